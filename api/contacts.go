package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/store"
)

func (s *Server) decodeContact(c *gin.Context, requireEmail bool) (ingest.ContactInput, bool) {
	body, err := readBody(c, maxContactBody)
	if err != nil {
		_ = c.Error(err)
		return ingest.ContactInput{}, false
	}
	in, errs, err := ingest.DecodeContact(body, requireEmail)
	if err != nil {
		_ = c.Error(malformed())
		return in, false
	}
	if len(errs) > 0 {
		_ = c.Error(invalid(errs...))
		return in, false
	}
	return in, true
}

// upsertContact creates the contact with the body's email (201) or patches
// the existing one (200).
func (s *Server) upsertContact(c *gin.Context) {
	in, ok := s.decodeContact(c, true)
	if !ok {
		return
	}
	contact, created, err := s.store.UpsertContact(c.Request.Context(), who(c).WorkspaceID, in.Email, in.Patch)
	if err != nil {
		_ = c.Error(storeError(err, "contact"))
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, contact)
}

func (s *Server) getContact(c *gin.Context) {
	id, err := pathID(c, "contact")
	if err == nil {
		var contact store.Contact
		if contact, err = s.store.GetContact(c.Request.Context(), who(c).WorkspaceID, id); err == nil {
			var goals map[string]store.GoalAggregate
			if goals, err = s.store.ContactGoals(c.Request.Context(), who(c).WorkspaceID, id); err == nil {
				c.JSON(http.StatusOK, contactWithGoals{Contact: contact, Goals: goals})
				return
			}
		}
	}
	_ = c.Error(storeError(err, "contact"))
}

func (s *Server) listContacts(c *gin.Context) {
	q := query{c: c}
	f := store.ContactFilter{Email: q.email(), Limit: q.limit(), Before: q.idCursor()}
	if err := q.err(); err != nil {
		_ = c.Error(err)
		return
	}
	contacts, more, err := s.store.ListContacts(c.Request.Context(), who(c).WorkspaceID, f)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, newPage(contacts, nextIDCursor(contacts, more, func(r store.Contact) uuid.UUID { return r.ID })))
}

func (s *Server) patchContact(c *gin.Context) {
	id, err := pathID(c, "contact")
	if err != nil {
		_ = c.Error(err)
		return
	}
	in, ok := s.decodeContact(c, false)
	if !ok {
		return
	}
	contact, err := s.store.PatchContact(c.Request.Context(), who(c).WorkspaceID, id, in.Patch)
	if err != nil {
		_ = c.Error(storeError(err, "contact"))
		return
	}
	c.JSON(http.StatusOK, contact)
}

func (s *Server) deleteContact(c *gin.Context) {
	id, err := pathID(c, "contact")
	if err == nil {
		var ended int
		if ended, err = s.store.DeleteContact(c.Request.Context(), who(c).WorkspaceID, id); err == nil {
			if ended > 0 && s.cfg.OnIntents != nil {
				s.cfg.OnIntents()
			}
			c.Status(http.StatusNoContent)
			return
		}
	}
	_ = c.Error(storeError(err, "contact"))
}

// timeline lists one contact's events, newest first.
func (s *Server) timeline(c *gin.Context) {
	id, err := pathID(c, "contact")
	if err != nil {
		_ = c.Error(err)
		return
	}
	ws := who(c).WorkspaceID
	if _, err := s.store.GetContact(c.Request.Context(), ws, id); err != nil {
		_ = c.Error(storeError(err, "contact"))
		return
	}
	q := query{c: c}
	f := store.EventFilter{ContactID: id, Name: q.eventName(), Since: q.time("since"), Until: q.time("until"),
		Limit: q.limit(), After: q.eventCursor()}
	if err := q.err(); err != nil {
		_ = c.Error(err)
		return
	}
	events, next, err := s.store.ListEvents(c.Request.Context(), ws, f)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, newPage(events, encodeEventCursor(next)))
}

// usageResponse answers GET /v1/usage; limit and hard_cap are null on an
// unlimited plan.
type usageResponse struct {
	Period  string     `json:"period"`
	Plan    store.Plan `json:"plan"`
	Tracked int64      `json:"tracked"`
	Limit   *int64     `json:"limit"`
	HardCap *int64     `json:"hard_cap"`
}

func (s *Server) usage(c *gin.Context) {
	u, err := s.store.GetUsage(c.Request.Context(), who(c).WorkspaceID)
	if errors.Is(err, store.ErrNotFound) {
		err = notFound("workspace")
	}
	if err != nil {
		_ = c.Error(err)
		return
	}
	resp := usageResponse{Period: u.Period.Format("2006-01"), Plan: u.Plan, Tracked: u.Tracked}
	if limit := u.Plan.Limit(); limit > 0 {
		hardCap := u.Plan.HardCap()
		resp.Limit, resp.HardCap = &limit, &hardCap
	}
	c.JSON(http.StatusOK, resp)
}

// contactWithGoals answers GET /v1/contacts/{id}: the contact and its goal
// aggregates per goal type.
type contactWithGoals struct {
	store.Contact
	Goals map[string]store.GoalAggregate `json:"goals"`
}
