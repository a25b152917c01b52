package definition_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/definition"
)

func TestLimits(t *testing.T) {
	const base = `{"name":"x","trigger":{"event":"a"},"steps":[{"id":"d","type":"delay","duration":"1h"}],"limits":%s}`
	a, problems := definition.Load([]byte(fmt.Sprintf(base,
		`{"max_enrollments":{"count":100,"per":"1h"},"per_contact":{"count":1,"per":"1d"},"on_limit":"queue"}`)), nil)
	require.Empty(t, problems)
	require.Equal(t, 100, a.Limits.MaxEnrollments.Count)
	require.Equal(t, "24h0m0s", a.Limits.PerContact.Per.Std().String())
	require.True(t, a.Limits.Queues())

	for limits, want := range map[string][]string{
		`{}`: {"/limits"},
		`{"max_enrollments":{"count":0,"per":"1h"}}`:                   {"/limits/max_enrollments/count"},
		`{"per_contact":{"count":1,"per":"10ms"}}`:                     {"/limits/per_contact/per"},
		`{"per_contact":{"count":1}}`:                                  {"/limits/per_contact/per"},
		`{"max_enrollments":{"count":1,"per":"1h"},"on_limit":"drop"}`: {"/limits/on_limit"},
		`{"max_enrollments":{"count":"many","per":"1h"}}`:              {"/limits/max_enrollments/count"},
		`{"max_enrollments":{"count":1,"per":"1h","burst":2}}`:         {"/limits/max_enrollments/burst"},
	} {
		_, problems := definition.Load([]byte(fmt.Sprintf(base, limits)), nil)
		var got []string
		for _, p := range problems {
			got = append(got, string(p.Pointer))
		}
		require.Equal(t, want, got, limits)
	}
}
