package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

// TestUpdateContactOnceLosesRaces changes the contact between each read
// and write of UpdateContactOnce: every lost race reads the contact again,
// the last attempt runs under the row lock, and the patch, computed from
// the contact as it finally was, is applied and recorded once; no other
// change is lost.
func TestUpdateContactOnceLosesRaces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.New(t, store.Config{})
	ws, _ := storetest.Workspace(t, s, store.PlanEnterprise)
	c, _, err := s.UpsertContact(ctx, ws.ID, "race@example.com", store.ContactPatch{Set: json.RawMessage(`{"n":0}`)})
	require.NoError(t, err)

	for _, races := range []int{0, 1, 2, 3, 10} {
		t.Run(fmt.Sprintf("%d races", races), func(t *testing.T) {
			step := fmt.Sprintf("step-%d", races)
			calls := 0
			compute := func(cur store.Contact) (store.ContactPatch, json.RawMessage, error) {
				calls++
				var p struct{ N float64 }
				require.NoError(t, json.Unmarshal(cur.Properties, &p))
				if calls <= races && calls <= store.CASAttempts {
					// Another writer gets in between: the patch computed
					// now must not be applied.
					_, err := s.PatchContact(ctx, ws.ID, c.ID, store.ContactPatch{
						Set: json.RawMessage(fmt.Sprintf(`{"other_%d_%d":true}`, races, calls))})
					require.NoError(t, err)
				}
				res := json.RawMessage(fmt.Sprintf(`{"n":%v}`, p.N+1))
				return store.ContactPatch{Set: res}, res, nil
			}
			before := contactProps(t, s, ws.ID, c.ID)["n"].(float64)
			eff, err := s.UpdateContactOnce(ctx, ws.ID, c.ID, "wf-race", step, nil, compute)
			require.NoError(t, err)
			require.False(t, eff.Repeat)
			res := eff.Result
			require.JSONEq(t, fmt.Sprintf(`{"n":%v}`, before+1), string(res))
			require.Equal(t, min(races, store.CASAttempts)+1, calls)
			got := contactProps(t, s, ws.ID, c.ID)
			require.Equal(t, before+1, got["n"])
			for i := 1; i <= min(races, store.CASAttempts); i++ {
				require.Equal(t, true, got[fmt.Sprintf("other_%d_%d", races, i)], "the other writer's change %d", i)
			}

			// Again: the recorded result, nothing computed or changed.
			again, err := s.UpdateContactOnce(ctx, ws.ID, c.ID, "wf-race", step, nil, compute)
			require.NoError(t, err)
			require.True(t, again.Repeat)
			require.JSONEq(t, string(res), string(again.Result))
			require.Equal(t, before+1, contactProps(t, s, ws.ID, c.ID)["n"])
		})
	}

	// A contact that is gone, and a compute that fails.
	_, err = s.UpdateContactOnce(ctx, ws.ID, ws.ID, "wf-race", "gone", nil, nil)
	require.ErrorIs(t, err, store.ErrNotFound)
	boom := fmt.Errorf("boom")
	_, err = s.UpdateContactOnce(ctx, ws.ID, c.ID, "wf-race", "fails", nil,
		func(store.Contact) (store.ContactPatch, json.RawMessage, error) {
			return store.ContactPatch{}, nil, boom
		})
	require.ErrorIs(t, err, boom)
}

// contactProps reads a contact's properties.
func contactProps(t *testing.T, s *store.Store, ws, id uuid.UUID) map[string]any {
	t.Helper()
	c, err := s.GetContact(context.Background(), ws, id)
	require.NoError(t, err)
	var p map[string]any
	require.NoError(t, json.Unmarshal(c.Properties, &p))
	return p
}
