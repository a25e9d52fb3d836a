package session

import (
	"context"
	"encoding/binary"
	"time"
)

// IDAt returns the least id a session created at t can have: ids are
// version 7 UUIDs, whose first 48 bits are the Unix milliseconds they were
// made at, so the sessions created before t are exactly the ids below it.
func IDAt(t time.Time) string {
	var u [16]byte
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(max(t.UnixMilli(), 0)))
	copy(u[:6], ms[2:])
	return formatUUID(u)
}

// retainBatch is how many sessions one Retain call looks at: each call is
// one commit, small beside the commits of the sessions being served.
const retainBatch = 500

// RetainOnce deletes the final sessions created more than keep ago, with
// what belongs to them, batch by batch, and returns how many it deleted.
func (s *Service) RetainOnce(ctx context.Context, keep time.Duration) (int, error) {
	cutoff := s.Now().Add(-keep)
	total, after := 0, ""
	for {
		n, next, err := s.store.Retain(ctx, cutoff, after, retainBatch)
		total += n
		if err != nil || next == "" {
			return total, err
		}
		after = next
	}
}

// RunRetention runs RetainOnce every interval until ctx is done, and
// returns ctx's error. Each pass that deleted something goes to onDone;
// failures go to onError and the next pass tries again.
func (s *Service) RunRetention(ctx context.Context, keep, interval time.Duration, onDone func(int), onError func(error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.RetainOnce(ctx, keep)
		if err != nil && ctx.Err() == nil {
			onError(err)
		}
		if n > 0 {
			onDone(n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
