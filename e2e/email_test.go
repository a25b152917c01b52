package e2e

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/activities"
)

// mailbox is an in-process SMTP server on loopback that keeps each message.
type mailbox struct {
	addr string
	mu   sync.Mutex
	msgs []string
	rcpt []string
}

func newMailbox(t *testing.T) *mailbox {
	t.Helper()
	m := &mailbox{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &mailSession{m: m}, nil }))
	srv.Domain = "mx.test"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m.addr = l.Addr().String()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return m
}

func (m *mailbox) messages() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.msgs...)
}

type mailSession struct {
	m  *mailbox
	to []string
}

func (s *mailSession) Mail(string, *smtp.MailOptions) error { return nil }

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.msgs = append(s.m.msgs, string(b))
	s.m.rcpt = append(s.m.rcpt, s.to...)
	return nil
}

func (s *mailSession) Reset()        { s.to = nil }
func (s *mailSession) Logout() error { return nil }

// TestSendEmailOverSMTP runs the no-branch: nobody reviews, so the
// enrollment sends an email over real SMTP, once.
func TestSendEmailOverSMTP(t *testing.T) {
	t.Parallel()
	box := newMailbox(t)
	s := newSystem(t, systemOptions{})
	mailer, err := activities.NewSMTPMailer("smtp://" + box.addr + "?tls=none")
	require.NoError(t, err)
	s.acts.Mailer = mailer
	s.acts.EmailFrom = "Shop <shop@example.com>"
	tn := s.tenant()
	tn.automation(`{"name":"review nudge","trigger":{"event":"purchase.completed"},
		"steps":[{"id":"review","type":"wait_for_event","event":"review.submitted","timeout":"1s",
		          "no":[{"id":"nudge","type":"send_email","to":"contact.email",
		                 "subject":"'How was order ' + trigger.properties.orderId + '?'",
		                 "text":"'Hi ' + contact.first_name + ', tell us what you think.'"}]}]}`)
	tn.event(map[string]any{"name": "purchase.completed", "email": "Ada@Example.com", "create_if_missing": true,
		"contact_name": "Ada", "properties": map[string]any{"orderId": "o-7"}})
	done := tn.waitEnrollment(tn.enrollments("")[0]["id"].(string), 30*time.Second)
	require.Equal(t, "completed", done["status"], "%v", outcomes(done))
	require.Equal(t, []string{"review:waiting", "review:no", "nudge:done"}, outcomes(done))

	msgs := box.messages()
	require.Len(t, msgs, 1)
	require.Equal(t, []string{"ada@example.com"}, box.rcpt)
	require.Contains(t, msgs[0], "Subject: How was order o-7?")
	require.Contains(t, msgs[0], "Hi Ada, tell us what you think.")
	// The Message-ID is fixed per workflow and step, so a retried send is
	// recognisable downstream.
	require.Contains(t, msgs[0], activities.EmailMessageID(done["workflow_id"].(string), "nudge", "shop@example.com"))
}
