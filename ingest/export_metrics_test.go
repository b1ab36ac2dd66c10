package ingest

// Committed records a committed batch as the workers do, for tests of
// the lag's bound.
func Committed(s *Service, gateway string, created int64) { s.met.committed(gateway, created) }

// HoldScrapes takes every /metrics slot until the returned func runs.
func HoldScrapes(s *Service) (release func()) {
	for range maxScrapes {
		s.met.scrapes <- struct{}{}
	}
	return func() {
		for range maxScrapes {
			<-s.met.scrapes
		}
	}
}
