package ingest

import (
	"context"
	"time"
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
