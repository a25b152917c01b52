package activities

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// DefaultWebhookTimeout bounds one delivery attempt when WebhookConfig
// leaves Timeout zero. Temporal's retry policy spaces the attempts.
const DefaultWebhookTimeout = 10 * time.Second

// WebhookConfig configures the HTTP client that delivers webhooks. The zero
// value is the safe production setting: public addresses only, 10s per
// attempt.
type WebhookConfig struct {
	// Timeout bounds one attempt, from dialling to the last byte read;
	// 0 means DefaultWebhookTimeout.
	Timeout time.Duration
	// AllowPrivate turns the address guard off, for development against
	// services on the same machine or network (WEBHOOK_ALLOW_PRIVATE).
	AllowPrivate bool
	// Allow lists networks reachable even though the guard refuses them,
	// such as an internal receiver (WEBHOOK_ALLOWLIST, see ParseAllowlist).
	Allow []netip.Prefix
}

// RefusedError is the network guard refusing a destination address. It
// comes wrapped in the *url.Error of the request; find it with errors.As.
type RefusedError struct {
	// Addr is the address that was about to be dialled.
	Addr netip.Addr
}

// Error says what was refused and how an operator can allow it.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("destination address %s is not public (loopback, private, link-local or reserved); "+
		"an operator can allow it with WEBHOOK_ALLOWLIST", e.Addr)
}

// NewWebhookClient returns an HTTP client for webhooks with its own
// transport. Every address is checked when it is dialled, after DNS
// resolution, so a name that resolves to a public address when validated
// and to an internal one when used (DNS rebinding) is still refused.
// Redirects are returned rather than followed, and no proxy is taken from
// the environment, since a proxy would dial on our behalf unchecked.
func NewWebhookClient(cfg WebhookConfig) *http.Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultWebhookTimeout
	}
	dialer := &net.Dialer{
		Timeout:   cfg.Timeout,
		KeepAlive: 30 * time.Second,
		Control:   cfg.control,
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// control is the net.Dialer hook: it sees the resolved address of every
// connection attempt, including each one Happy Eyeballs makes.
func (c WebhookConfig) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Fail closed: an address we cannot read is not one we can vouch for.
		return fmt.Errorf("webhook dial to %q (%s): unreadable address: %w", address, network, err)
	}
	if !c.allowed(ap.Addr()) {
		return &RefusedError{Addr: ap.Addr()}
	}
	return nil
}

// allowed reports whether a webhook may connect to ip: a public address,
// or one inside an Allow prefix, or any when AllowPrivate is set.
func (c WebhookConfig) allowed(ip netip.Addr) bool {
	ip = ip.WithZone("").Unmap()
	if c.AllowPrivate {
		return true
	}
	for _, p := range c.Allow {
		if p.Contains(ip) {
			return true
		}
	}
	return public(ip)
}

// refused lists the non-public networks that netip's predicates do not
// cover. IPv4-mapped IPv6 addresses are unmapped before the check.
var refused = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"; 0.0.0.0 reaches the local host
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT, often internal infrastructure
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation (TEST-NET-1)
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation (TEST-NET-2)
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation (TEST-NET-3)
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and 255.255.255.255 broadcast
	netip.MustParsePrefix("::/96"),           // deprecated IPv4-compatible addresses, :: and ::1
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
}

// Prefixes whose addresses embed an IPv4 address, which a translator or
// relay would reach: they are as public as the address they carry.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// public reports whether ip is a globally routable unicast address.
func public(ip netip.Addr) bool {
	if !ip.IsValid() || ip.IsUnspecified() || ip.IsLoopback() || ip.IsPrivate() ||
		ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range refused {
		if p.Contains(ip) {
			return false
		}
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return public(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(ip):
		return public(netip.AddrFrom4([4]byte(b[2:6])))
	}
	return true
}

// ParseAllowlist reads a comma-separated list of networks, such as the
// WEBHOOK_ALLOWLIST variable "127.0.0.0/8,10.1.2.3/32,fd00::/8". A bare
// address stands for itself alone. An empty string is an empty list.
func ParseAllowlist(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(item, "/") {
			var err error
			if p, err = netip.ParsePrefix(item); err != nil {
				return nil, fmt.Errorf("webhook allowlist: %w", err)
			}
		} else {
			a, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("webhook allowlist: %w", err)
			}
			if a.Zone() != "" {
				return nil, fmt.Errorf("webhook allowlist: %q: zones are not allowed", item)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		// allowed compares unmapped addresses, so an IPv4-mapped prefix
		// becomes the IPv4 prefix it means.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
