package layout

import (
	"sync"

	"github.com/outposthq/outpost/ingest"
)

// MaxCachedSeries bounds the series ids a SeriesCache keeps; past it the
// cache starts again (a lookup costs the store one statement).
const MaxCachedSeries = 1 << 20

// SeriesCache maps series keys to their ids in the store's series table.
// Put only ids that are committed: an id of a series row rolled back may
// be given to another series. Safe for concurrent use.
type SeriesCache struct {
	mu sync.RWMutex
	m  map[ingest.SeriesKey]int64
}

// Get returns the id of k, if cached.
func (c *SeriesCache) Get(k ingest.SeriesKey) (int64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	id, ok := c.m[k]
	return id, ok
}

// Put caches ids.
func (c *SeriesCache) Put(ids map[ingest.SeriesKey]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, id := range ids {
		if c.m == nil || len(c.m) >= MaxCachedSeries {
			c.m = make(map[ingest.SeriesKey]int64)
		}
		c.m[k] = id
	}
}

// Reset forgets every id.
func (c *SeriesCache) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = nil
}
