package definition

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "90s", want: 90 * time.Second},
		{in: "30m", want: 30 * time.Minute},
		{in: "72h", want: 72 * time.Hour},
		{in: "7d", want: 7 * 24 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "1.5d", want: 36 * time.Hour},
		{in: "1h30m15s", want: time.Hour + 30*time.Minute + 15*time.Second},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "3µs", want: 3 * time.Microsecond},
		{in: ".5h", want: 30 * time.Minute},
		{in: "0s", want: 0},
		{in: "", wantErr: `invalid duration "": use a number and a unit`},
		{in: "15", wantErr: `invalid duration "15": use a number and a unit`},
		{in: "h", wantErr: `invalid duration "h": use a number and a unit`},
		{in: "-1h", wantErr: `invalid duration "-1h"`},
		{in: "+1h", wantErr: `invalid duration "+1h"`},
		{in: "1 h", wantErr: `unknown unit " h"`},
		{in: "2w", wantErr: `unknown unit "w"; use s, m, h or d`},
		{in: "1..5d", wantErr: `bad number "1..5"`},
		{in: "1.2.3s", wantErr: `bad number "1.2.3"`},
		{in: "99999999999d", wantErr: "bad number"},
		{in: "106751d", want: 106751 * 24 * time.Hour},
		{in: "106752d", wantErr: "too long"},
		{in: "106000d106000d", wantErr: "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			d, err := ParseDuration(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, d.Std())
			require.Equal(t, tt.in, d.String())
		})
	}
}

func TestDurationJSON(t *testing.T) {
	t.Parallel()
	var d Duration
	require.NoError(t, json.Unmarshal([]byte(`"1d2h"`), &d))
	require.Equal(t, 26*time.Hour, d.Std())
	out, err := json.Marshal(d)
	require.NoError(t, err)
	require.Equal(t, `"1d2h"`, string(out))

	require.ErrorContains(t, json.Unmarshal([]byte(`5`), &d), "duration must be a JSON string")
	require.ErrorContains(t, json.Unmarshal([]byte(`"5y"`), &d), `unknown unit "y"`)

	out, err = json.Marshal(NewDuration(90 * time.Minute))
	require.NoError(t, err)
	require.Equal(t, `"1h30m0s"`, string(out))

	var zero Duration
	require.True(t, zero.IsZero())
	require.Equal(t, "0s", zero.String())
}
