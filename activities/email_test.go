package activities

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/definition"
)

// smtpServer is an in-process SMTP server on loopback that keeps what it
// receives. reject, when set, answers RCPT TO with that error.
type smtpServer struct {
	addr   string
	mu     sync.Mutex
	msgs   []captured
	reject *smtp.SMTPError
}

type captured struct {
	from string
	to   []string
	data []byte
}

func newSMTPServer(t *testing.T) *smtpServer {
	t.Helper()
	s := &smtpServer{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &smtpSession{srv: s}, nil
	}))
	srv.Domain = "mx.test"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.addr = l.Addr().String()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

func (s *smtpServer) url() string { return "smtp://" + s.addr + "?tls=none" }

func (s *smtpServer) messages() []captured {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]captured(nil), s.msgs...)
}

func (s *smtpServer) setReject(e *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject = e
}

type smtpSession struct {
	srv *smtpServer
	cur captured
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.cur = captured{from: from}
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if s.srv.reject != nil {
		return s.srv.reject
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = data
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	s.srv.msgs = append(s.srv.msgs, s.cur)
	return nil
}

func (s *smtpSession) Reset()        { s.cur = captured{} }
func (s *smtpSession) Logout() error { return nil }

// parsed is a received message with its text and HTML parts decoded.
type parsed struct {
	header     mail.Header
	text, html string
}

func parseMessage(t *testing.T, data []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	require.NoError(t, err)
	p := parsed{header: m.Header}
	var walk func(h map[string][]string, body io.Reader)
	walk = func(h map[string][]string, body io.Reader) {
		get := func(k string) string {
			if v := h[k]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
		mediaType, params, err := mime.ParseMediaType(get("Content-Type"))
		require.NoError(t, err)
		if strings.HasPrefix(mediaType, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				part, err := mr.NextPart()
				if errors.Is(err, io.EOF) {
					return
				}
				require.NoError(t, err)
				// multipart.Reader decodes quoted-printable itself and drops the header.
				walk(part.Header, part)
			}
		}
		switch strings.ToLower(get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			body = quotedprintable.NewReader(body)
		case "base64":
			body = base64.NewDecoder(base64.StdEncoding, body)
		}
		b, err := io.ReadAll(body)
		require.NoError(t, err)
		switch mediaType {
		case "text/plain":
			p.text = strings.TrimRight(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
		case "text/html":
			p.html = strings.TrimRight(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
		}
	}
	walk(m.Header, m.Body)
	return p
}

func (f fixture) email(step definition.EmailStep) EmailInput {
	return EmailInput{Scope: f.scope, StepID: "welcome", Step: step}
}

var welcome = definition.EmailStep{
	To:      "contact.email",
	Subject: `"Your order " + trigger.properties.orderId`,
	Text:    `"Hi " + contact.first_name + ", thanks for order " + trigger.properties.orderId + "."`,
	HTML:    `"<p>Hi " + contact.first_name + ", thanks for order <b>" + trigger.properties.orderId + "</b>.</p>"`,
}

func TestSendEmailDelivers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := newSMTPServer(t)
	mailer, err := NewSMTPMailer(srv.url())
	require.NoError(t, err)
	a := &Activities{Store: f.st, Env: f.env, Mailer: mailer, EmailFrom: "Shop <orders@shop.example>"}
	in := f.email(welcome)

	res, err := run(t, a.SendEmail, in)
	require.NoError(t, err)
	require.False(t, res.AlreadySent)
	require.Equal(t, EmailMessageID(f.scope.WorkflowID, "welcome", "orders@shop.example"), res.MessageID)
	require.Regexp(t, `^<[0-9a-f]{64}@shop\.example>$`, res.MessageID)

	msgs := srv.messages()
	require.Len(t, msgs, 1)
	require.Equal(t, "orders@shop.example", msgs[0].from)
	require.Equal(t, []string{"ada@example.com"}, msgs[0].to)
	m := parseMessage(t, msgs[0].data)
	require.Equal(t, "<ada@example.com>", m.header.Get("To"))
	require.Equal(t, `"Shop" <orders@shop.example>`, m.header.Get("From"))
	require.Equal(t, "Your order ord_42", m.header.Get("Subject"))
	require.Equal(t, res.MessageID, m.header.Get("Message-Id"))
	require.Equal(t, "auto-generated", m.header.Get("Auto-Submitted"))
	require.NotEmpty(t, m.header.Get("Date"))
	require.Equal(t, "Hi Ada, thanks for order ord_42.", m.text)
	require.Equal(t, "<p>Hi Ada, thanks for order <b>ord_42</b>.</p>", m.html)

	// The step is marked done: running it again sends nothing.
	again, err := run(t, a.SendEmail, in)
	require.NoError(t, err)
	require.True(t, again.AlreadySent)
	require.Equal(t, res.MessageID, again.MessageID)
	require.Len(t, srv.messages(), 1)

	done, ok, err := f.st.EffectDone(context.Background(), f.scope.WorkflowID, "welcome")
	require.NoError(t, err)
	require.True(t, ok)
	var mark map[string]any
	require.NoError(t, json.Unmarshal(done, &mark))
	require.Equal(t, res.MessageID, mark["message_id"])
}

func TestSendEmailTextOnlyAndDefaultFrom(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := newSMTPServer(t)
	mailer, err := NewSMTPMailer("smtp://" + srv.addr) // STARTTLS only when offered; this server does not
	require.NoError(t, err)
	a := &Activities{Store: f.st, Env: f.env, Mailer: mailer}
	in := f.email(definition.EmailStep{To: `"Ada <" + contact.email + ">"`, Subject: `"Two\r\nlines"`, Text: `"Plain."`})

	res, err := run(t, a.SendEmail, in)
	require.NoError(t, err)
	require.Regexp(t, `@localhost>$`, res.MessageID)
	msgs := srv.messages()
	require.Len(t, msgs, 1)
	require.Equal(t, "no-reply@localhost", msgs[0].from)
	m := parseMessage(t, msgs[0].data)
	require.Equal(t, `"Ada" <ada@example.com>`, m.header.Get("To"))
	require.Equal(t, "Two lines", m.header.Get("Subject"), "a rendered line break cannot start a header")
	require.Equal(t, "Plain.", m.text)
	require.Empty(t, m.html)
}

func TestSendEmailInvalidRecipient(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := newSMTPServer(t)
	mailer, err := NewSMTPMailer(srv.url())
	require.NoError(t, err)
	a := &Activities{Store: f.st, Env: f.env, Mailer: mailer}

	for _, to := range []string{`"not an address"`, `"a@example.com, b@example.com"`, `""`,
		`"a@example.com\r\nBcc: victim@example.com"`} {
		step := welcome
		step.To = to
		_, err := run(t, a.SendEmail, f.email(step))
		requirePermanent(t, err, ErrTypeInvalid)
	}
	// An expression that does not yield a string is as permanent.
	step := welcome
	step.To = "trigger.properties.total"
	_, err = run(t, a.SendEmail, f.email(step))
	requirePermanent(t, err, ErrTypeInvalid)
	require.Empty(t, srv.messages())
}

func TestSendEmailRejected(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := newSMTPServer(t)
	mailer, err := NewSMTPMailer(srv.url())
	require.NoError(t, err)
	a := &Activities{Store: f.st, Env: f.env, Mailer: mailer}

	srv.setReject(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"})
	_, err = run(t, a.SendEmail, f.email(welcome))
	requirePermanent(t, err, ErrTypeRejected)
	require.Contains(t, err.Error(), "no such mailbox")

	srv.setReject(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"})
	_, err = run(t, a.SendEmail, f.email(welcome))
	requireRetryable(t, err)

	// Neither attempt is marked done, so the retry that succeeds sends.
	srv.setReject(nil)
	res, err := run(t, a.SendEmail, f.email(welcome))
	require.NoError(t, err)
	require.False(t, res.AlreadySent)
	require.Len(t, srv.messages(), 1)
}

func TestSendEmailServerDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	mailer, err := NewSMTPMailer("smtp://" + addr + "?tls=none")
	require.NoError(t, err)
	a := &Activities{Store: f.st, Env: f.env, Mailer: mailer}

	_, err = run(t, a.SendEmail, f.email(welcome))
	requireRetryable(t, err)
	_, ok, err := f.st.EffectDone(context.Background(), f.scope.WorkflowID, "welcome")
	require.NoError(t, err)
	require.False(t, ok)
}

func TestSendEmailWithoutMailer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := &Activities{Store: f.st, Env: f.env}
	_, err := run(t, a.SendEmail, f.email(welcome))
	requirePermanent(t, err, ErrTypeInvalid)
	require.Contains(t, err.Error(), "SMTP_URL")
}

func TestNewSMTPMailer(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{
		"smtp://user:pass@mail.example.com:587",
		"smtp://mail.example.com",
		"smtps://user:p%40ss@mail.example.com:465",
		"smtps://mail.example.com",
		"smtp://127.0.0.1:25?tls=none",
		"smtp://mail.example.com?tls=required",
	} {
		_, err := NewSMTPMailer(ok)
		require.NoError(t, err, ok)
	}
	for _, bad := range []string{
		"",
		"http://mail.example.com",
		"smtp://",
		"smtp://mail.example.com:0",
		"smtp://mail.example.com:99999",
		"smtp://mail.example.com?tls=maybe",
		"smtp://mail.example.com?timeout=5s",
		"smtps://mail.example.com?tls=none",
		"::not a url",
	} {
		_, err := NewSMTPMailer(bad)
		require.Error(t, err, bad)
	}
	_, err := NewSMTPMailer("smtp://user:secret-password@mail.example.com:bad")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret-password", "errors never echo the password")
}
