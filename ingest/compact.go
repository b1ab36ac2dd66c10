package ingest

import (
	"context"
	"time"

	"github.com/outposthq/outpost"
)

// compactLoop compacts the store every CompactEvery until ctx ends: the
// windows that ended more than CompactGrace ago. A failure is logged and
// tried again at the next turn; what was not folded stays readable as
// rows.
func (s *Service) compactLoop(ctx context.Context, c Compactor) {
	defer s.compactor.Done()
	t := time.NewTicker(s.opts.CompactEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		st, err := c.Compact(ctx, s.now().Add(-s.opts.CompactGrace).UnixNano())
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.errLog.Error().Err(err).Msg("compaction failed; will retry")
		case st.Windows > 0:
			s.stats.compacted.Add(st.Windows)
			s.log.Info().Int64("windows", st.Windows).Int64("rows", st.Rows).Int64("chunks_merged", st.ChunksMerged).
				Int64("chunks_written", st.ChunksWritten).Dur("took", time.Since(start)).Msg("compacted")
		}
	}
}

// maintainLoop maintains the store at once and then every MaintainEvery
// until ctx ends. A failure is logged and tried again at the next turn.
func (s *Service) maintainLoop(ctx context.Context, m Maintainer) {
	defer s.maintainer.Done()
	r := Retention{Raw: int64(s.opts.Retention), Minute: int64(s.opts.RetentionMinute)}
	t := time.NewTicker(s.opts.MaintainEvery)
	defer t.Stop()
	for {
		start := time.Now()
		st, err := m.Maintain(ctx, s.now().UnixNano(), r)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.errLog.Error().Err(err).Msg("maintenance failed; will retry")
		case st.Dropped > 0 || st.Rows > 0:
			s.log.Info().Int64("partitions_dropped", st.Dropped).Int64("rows_deleted", st.Rows).
				Dur("took", time.Since(start)).Msg("retention applied")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// expired reports whether b was made before the retention's horizon.
func (s *Service) expired(b *outpost.Batch) bool {
	return s.opts.Retention > 0 && b.Created < Horizon(s.now().UnixNano(), s.opts.Retention)
}
