package activities

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWebhookConfigAllowed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ip     string
		public bool
	}{
		// Public unicast.
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"93.184.216.34", true},
		{"172.15.255.255", true}, // just below 172.16/12
		{"172.32.0.0", true},     // just above it
		{"100.63.255.255", true}, // just below 100.64/10
		{"100.128.0.0", true},    // just above it
		{"2606:4700:4700::1111", true},
		{"2a00:1450:4001:82b::200e", true},
		{"::ffff:8.8.8.8", true},      // IPv4-mapped public
		{"64:ff9b::808:808", true},    // NAT64 of 8.8.8.8
		{"2002:808:808::1", true},     // 6to4 of 8.8.8.8
		{"fe80::1%eth0", false},       // zones do not hide link-local
		{"127.0.0.1", false},          // loopback
		{"127.255.255.254", false},    // all of 127/8
		{"::1", false},                // IPv6 loopback
		{"::ffff:127.0.0.1", false},   // IPv4-mapped loopback
		{"::127.0.0.1", false},        // IPv4-compatible (deprecated)
		{"10.0.0.1", false},           // RFC 1918
		{"10.255.255.255", false},     //
		{"172.16.0.1", false},         //
		{"172.31.255.255", false},     //
		{"192.168.1.1", false},        //
		{"::ffff:10.1.2.3", false},    // IPv4-mapped private
		{"::ffff:192.168.0.1", false}, //
		{"fc00::1", false},            // unique local, fc00::/7
		{"fd12:3456:789a::1", false},  //
		{"169.254.169.254", false},    // cloud metadata
		{"169.254.0.1", false},        // link-local
		{"::ffff:169.254.169.254", false},
		{"fe80::1", false},         // IPv6 link-local
		{"febf:ffff::1", false},    // end of fe80::/10
		{"fec0::1", false},         // deprecated site-local
		{"0.0.0.0", false},         // unspecified
		{"0.1.2.3", false},         // "this network"
		{"::", false},              // IPv6 unspecified
		{"224.0.0.1", false},       // multicast
		{"239.255.255.250", false}, // SSDP multicast
		{"ff02::1", false},         // IPv6 multicast
		{"ff05::2", false},         //
		{"100.64.0.1", false},      // CGNAT 100.64/10
		{"100.127.255.255", false}, //
		{"::ffff:100.64.0.1", false},
		{"192.0.0.8", false},       // IETF protocol assignments
		{"192.0.2.1", false},       // documentation
		{"198.18.0.1", false},      // benchmarking
		{"198.51.100.7", false},    // documentation
		{"203.0.113.9", false},     // documentation
		{"240.0.0.1", false},       // reserved
		{"255.255.255.255", false}, // broadcast
		{"2001:db8::1", false},     // documentation
		{"100::1", false},          // discard-only
		{"64:ff9b::7f00:1", false}, // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", false},
		{"64:ff9b:1::1", false},   // local-use NAT64
		{"2002:7f00:1::1", false}, // 6to4 of 127.0.0.1
		{"2002:a00:1::1", false},  // 6to4 of 10.0.0.1
	}
	var guard WebhookConfig
	open := WebhookConfig{AllowPrivate: true}
	for _, c := range cases {
		ip := netip.MustParseAddr(c.ip)
		require.Equal(t, c.public, guard.allowed(ip), "%s", c.ip)
		require.True(t, open.allowed(ip), "AllowPrivate allows %s", c.ip)
	}
}

func TestWebhookConfigAllowList(t *testing.T) {
	t.Parallel()
	allow, err := ParseAllowlist(" 127.0.0.0/8, 10.1.2.3 ,fd00::/8,::ffff:192.168.7.0/120,")
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("10.1.2.3/32"),
		netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("192.168.7.0/24"),
	}, allow)
	c := WebhookConfig{Allow: allow}
	for ip, want := range map[string]bool{
		"127.0.0.1":          true,
		"::ffff:127.0.0.1":   true, // mapped forms match the IPv4 prefix
		"10.1.2.3":           true,
		"10.1.2.4":           false, // only the listed host
		"fd00::5":            true,
		"fc00::5":            false,
		"192.168.7.9":        true,
		"192.168.8.9":        false,
		"169.254.169.254":    false, // metadata stays refused
		"8.8.8.8":            true,  // public is always allowed
		"::ffff:192.168.7.1": true,
	} {
		require.Equal(t, want, c.allowed(netip.MustParseAddr(ip)), "%s", ip)
	}

	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.0/8,nope", "fe80::1%eth0"} {
		_, err := ParseAllowlist(bad)
		require.Error(t, err, "%q", bad)
	}
	none, err := ParseAllowlist("")
	require.NoError(t, err)
	require.Empty(t, none)
}

// TestWebhookClientChecksResolvedAddress dials a name, not an address: the
// guard sees what "localhost" resolves to, which is how DNS rebinding is
// defeated. Its refusal is a *RefusedError the caller can find.
func TestWebhookClientChecksResolvedAddress(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	byName := "http://localhost:" + u.Port() + "/"

	_, err = NewWebhookClient(WebhookConfig{}).Get(byName)
	var refused *RefusedError
	require.True(t, errors.As(err, &refused), "got %v", err)
	require.True(t, refused.Addr.IsLoopback())
	require.Zero(t, hits.Load())

	loopback, err := ParseAllowlist("127.0.0.0/8,::1/128")
	require.NoError(t, err)
	resp, err := NewWebhookClient(WebhookConfig{Allow: loopback}).Get(byName)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.EqualValues(t, 1, hits.Load())
}
