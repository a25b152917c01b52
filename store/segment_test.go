package store_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/segment"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

func TestSegmentSQLRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.New(t, store.Config{})
	ws, _ := storetest.Workspace(t, s, store.PlanStarter)
	env, err := conditions.NewEnv(conditions.Config{})
	require.NoError(t, err)
	for _, m := range []string{`{"all":[{"event":"page.viewed","performed":false,"within":"30d"}]}`,
		`{"all":[{"goal":{"type":"purchase","aggregate":"min","op":"<","value":0}}]}`,
		`{"all":[{"last_event":{"older_than":"90d"}}]}`, `{"any":[{"last_event":{"event":"a","within":"9d"}}]}`,
		`{"all":[{"property":"plan","op":"in","value":["pro","team"]},{"property":"seats","op":"gte","value":10},{"not":{"property":"churned","op":"exists"}},{"property":"tags","op":"contains","value":"x"},{"property":"d","op":"lt","value":"2026"}]}`} {
		seg, problems := segment.Parse([]byte(`{"name":"x","match":`+m+`}`), env.SegmentWhere)
		require.Empty(t, problems)
		_, err := s.CountSegment(ctx, ws.ID, seg.Match)
		require.NoError(t, err, m)
		_, _, err = s.SegmentContacts(ctx, ws.ID, seg.Match, uuid.Nil, 10)
		require.NoError(t, err, m)
		_, err = s.SegmentMember(ctx, ws.ID, store.NewID(), seg.Match)
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	for _, where := range []string{`event.properties.path == "/pricing"`, `event.properties.n > 3 && !(event.properties.a in ["x", 1])`,
		`has(event.properties.coupon) || event.properties["a b"].c != null`} {
		seg, problems := segment.Parse([]byte(`{"name":"x","match":{"all":[{"event":"a","where":`+quote(where)+`}]}}`), env.SegmentWhere)
		require.Empty(t, problems)
		_, err := s.CountSegment(ctx, ws.ID, seg.Match)
		require.NoError(t, err, where)
		_, _, err = s.SegmentContacts(ctx, ws.ID, seg.Match, store.NewID(), 10)
		require.NoError(t, err, where)
		_, _, err = s.SegmentContacts(ctx, ws.ID, seg.Match, uuid.Nil, 10)
		require.NoError(t, err, where)
		_, err = s.SegmentMember(ctx, ws.ID, store.NewID(), seg.Match)
		require.ErrorIs(t, err, store.ErrNotFound)
	}
}

func quote(s string) string {
	b := []byte{'"'}
	for _, r := range s {
		if r == '"' || r == '\\' {
			b = append(b, '\\')
		}
		b = append(b, string(r)...)
	}
	return string(append(b, '"'))
}
