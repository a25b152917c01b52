package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/signalbox/signalbox/definition"
)

// DefaultEmailFrom is the From of emails when Activities.EmailFrom is
// empty. Most mail servers refuse it; set EMAIL_FROM to a real sender.
const DefaultEmailFrom = "Signalbox <no-reply@localhost>"

// ErrRejected marks a message the mail server refused for good (an SMTP
// 5xx answer to the sender, a recipient or the content): sending it again
// would be refused again. Mailers wrap it; SendEmail makes it permanent.
var ErrRejected = errors.New("message rejected")

// Message is one email, ready to send.
type Message struct {
	// From and To are single RFC 5322 addresses, with or without a name.
	From, To string
	// Subject is a single line.
	Subject string
	// Text is the plain-text body; HTML, when set, is its alternative.
	Text, HTML string
	// MessageID is the Message-ID header including its angle brackets.
	MessageID string
	// Headers are extra header fields.
	Headers map[string]string
}

// Mailer delivers messages. Send returns an error wrapping ErrRejected
// when the server refuses the message permanently; any other error counts
// as temporary and the step is retried.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// EmailInput is a send_email step to perform for an enrollment.
type EmailInput struct {
	Scope  Scope                `json:"scope"`
	StepID string               `json:"step_id"`
	Step   definition.EmailStep `json:"step"`
	// Book asks the activity to do the step's bookkeeping once done.
	Book *Bookkeeping `json:"book,omitempty"`
}

// EmailResult names the message sent. AlreadySent means an earlier
// attempt sent it and this one sent nothing.
type EmailResult struct {
	Booking
	MessageID   string `json:"message_id"`
	AlreadySent bool   `json:"already_sent"`
}

// sendEmail renders a send_email step and sends it through the Mailer.
// Each (workflow, step) sends at most one message as far as Signalbox can
// tell: a step already marked done returns AlreadySent. A crash between the
// server accepting the message and the mark sends it again on retry, with
// the same Message-ID, which receiving systems use to recognise a repeat.
// An invalid recipient, an expression that fails to render, a missing
// Mailer and a permanent refusal by the server are permanent failures.
func (a *Activities) sendEmail(ctx context.Context, in EmailInput) (EmailResult, error) {
	done, ok, err := a.Store.EffectDone(ctx, in.Scope.WorkflowID, in.StepID)
	if err != nil {
		return EmailResult{}, err
	}
	if ok {
		var res EmailResult
		_ = json.Unmarshal(done, &res)
		res.AlreadySent = true
		return res, nil
	}
	if a.Mailer == nil {
		return EmailResult{}, permanent(ErrTypeInvalid, errors.New("email cannot be sent: no SMTP_URL configured"))
	}
	from := a.EmailFrom
	if from == "" {
		from = DefaultEmailFrom
	}
	sender, err := mail.ParseAddress(from)
	if err != nil {
		return EmailResult{}, permanent(ErrTypeInvalid, fmt.Errorf("email from address %q: %w", from, err))
	}

	vars, err := a.vars(ctx, in.Scope)
	if err != nil {
		return EmailResult{}, err
	}
	var to, subject, text, html string
	for _, f := range []struct {
		name, expr string
		dst        *string
	}{{"to", in.Step.To, &to}, {"subject", in.Step.Subject, &subject}, {"text", in.Step.Text, &text},
		{"html", in.Step.HTML, &html}} {
		if *f.dst, err = a.text(ctx, f.name, f.expr, vars); err != nil {
			return EmailResult{}, keepPermanent(err)
		}
	}
	rcpt, err := mail.ParseAddress(strings.TrimSpace(to))
	if err != nil {
		return EmailResult{}, permanent(ErrTypeInvalid, fmt.Errorf("to: %q is not one email address: %w", to, err))
	}
	if text == "" && html == "" {
		return EmailResult{}, permanent(ErrTypeInvalid, errors.New("email has neither text nor html"))
	}

	msg := Message{
		From:      sender.String(),
		To:        rcpt.String(),
		Subject:   oneLine(subject),
		Text:      text,
		HTML:      html,
		MessageID: EmailMessageID(in.Scope.WorkflowID, in.StepID, sender.Address),
		// RFC 3834: tells auto-responders (vacation replies) to stay quiet.
		Headers: map[string]string{"Auto-Submitted": "auto-generated"},
	}
	if err := a.Mailer.Send(ctx, msg); err != nil {
		if errors.Is(err, ErrRejected) {
			return EmailResult{}, permanent(ErrTypeRejected, fmt.Errorf("email to %s: %w", rcpt.Address, err))
		}
		return EmailResult{}, fmt.Errorf("email to %s: %w", rcpt.Address, err)
	}
	res := EmailResult{MessageID: msg.MessageID}
	mark, _ := json.Marshal(res)
	if err := a.Store.MarkEffectDone(ctx, in.Scope.WorkflowID, in.StepID, mark); err != nil && a.Log != nil {
		// Temporal records the success all the same; the mark only guards
		// the window of a crash before that.
		a.Log.WarnContext(ctx, "email sent but not marked done", "workflow_id", in.Scope.WorkflowID,
			"step_id", in.StepID, "error", err.Error())
	}
	return res, nil
}

// EmailMessageID is the Message-ID of a step's email: the same on every
// attempt, under the domain of the sender's address ("signalbox" when it
// has none).
func EmailMessageID(workflowID, stepID, fromAddress string) string {
	sum := sha256.Sum256([]byte(workflowID + "/" + stepID))
	domain := "signalbox"
	if at := strings.LastIndexByte(fromAddress, '@'); at >= 0 && at < len(fromAddress)-1 {
		domain = fromAddress[at+1:]
	}
	return "<" + hex.EncodeToString(sum[:]) + "@" + domain + ">"
}

// oneLine keeps a rendered subject on one header line: a line break in it
// would otherwise end the header or start another.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
}

// smtpMailer sends each message over a connection of its own.
type smtpMailer struct {
	host string
	opts []gomail.Option
}

// NewSMTPMailer returns a Mailer for an SMTP_URL:
//
//	smtp://user:pass@host:587   STARTTLS when the server offers it (default port 587)
//	smtps://user:pass@host:465  TLS from the first byte (default port 465)
//	smtp://host:25?tls=none     no TLS at all, for local test servers
//	smtp://host:587?tls=required refuse a server that does not offer STARTTLS
//
// Credentials are used with the strongest mechanism the server offers, and
// PLAIN or LOGIN only over TLS, so a password never crosses in the clear.
func NewSMTPMailer(rawURL string) (Mailer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("SMTP_URL is not a valid URL")
	}
	if u.Hostname() == "" {
		return nil, errors.New("SMTP_URL has no host")
	}
	opts := []gomail.Option{gomail.WithTimeout(30 * time.Second)}
	port := 587
	switch u.Scheme {
	case "smtp":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case "smtps":
		port = 465
		opts = append(opts, gomail.WithSSL())
	default:
		return nil, fmt.Errorf("SMTP_URL scheme %q: use smtp or smtps", u.Scheme)
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("SMTP_URL port %q is not valid", p)
		}
	}
	opts = append(opts, gomail.WithPort(port))
	q := u.Query()
	for k := range q {
		if k != "tls" {
			return nil, fmt.Errorf("SMTP_URL parameter %q is unknown; only tls is", k)
		}
	}
	switch tls := q.Get("tls"); {
	case tls == "":
	case u.Scheme == "smtps":
		return nil, errors.New("SMTP_URL: tls is for smtp://; smtps:// always uses TLS")
	case tls == "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case tls == "required":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		return nil, fmt.Errorf("SMTP_URL tls=%q: use none or required", tls)
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(u.User.Username()), gomail.WithPassword(pass))
	}
	m := &smtpMailer{host: u.Hostname(), opts: opts}
	if _, err := m.client(); err != nil {
		return nil, fmt.Errorf("SMTP_URL: %w", err)
	}
	return m, nil
}

// client makes a go-mail client per message: it is cheap, and concurrent
// activities then share no connection state.
func (m *smtpMailer) client() (*gomail.Client, error) {
	return gomail.NewClient(m.host, m.opts...)
}

// Send delivers one message. A 5xx answer once the conversation is under
// way (to MAIL FROM, RCPT TO or the content) wraps ErrRejected. Everything
// else is temporary: 4xx answers, unreachable servers, and failures before
// the message (greeting, STARTTLS, authentication), which an operator can
// fix while Temporal retries.
func (m *smtpMailer) Send(ctx context.Context, msg Message) error {
	c, err := m.client()
	if err != nil {
		return err
	}
	gm := gomail.NewMsg()
	if err := gm.From(msg.From); err != nil {
		return fmt.Errorf("%w: from: %w", ErrRejected, err)
	}
	if err := gm.To(msg.To); err != nil {
		return fmt.Errorf("%w: to: %w", ErrRejected, err)
	}
	gm.Subject(msg.Subject)
	gm.SetMessageIDWithValue(strings.TrimSuffix(strings.TrimPrefix(msg.MessageID, "<"), ">"))
	gm.SetDate()
	keys := make([]string, 0, len(msg.Headers))
	for k := range msg.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		gm.SetGenHeader(gomail.Header(k), msg.Headers[k])
	}
	switch {
	case msg.Text != "" && msg.HTML != "":
		gm.SetBodyString(gomail.TypeTextPlain, msg.Text)
		gm.AddAlternativeString(gomail.TypeTextHTML, msg.HTML)
	case msg.HTML != "":
		gm.SetBodyString(gomail.TypeTextHTML, msg.HTML)
	default:
		gm.SetBodyString(gomail.TypeTextPlain, msg.Text)
	}
	err = c.DialAndSendWithContext(ctx, gm)
	if gm.IsDelivered() {
		// The server took the message; a failure after that (RSET, QUIT)
		// must not make a retry send it twice.
		return nil
	}
	var se *gomail.SendError
	if errors.As(err, &se) && se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
		return fmt.Errorf("%w: %w", ErrRejected, err)
	}
	return err
}
