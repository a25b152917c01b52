package conditions

import (
	"container/list"
	"sync"
)

// cache is a bounded LRU of compiled programs shared by every caller of an Env. A program depends
// only on its key, so eviction changes how long Compile takes, never what it returns.
type cache struct {
	mu      sync.Mutex
	max     int
	order   *list.List // of *cacheEntry, most recently used at the front
	entries map[cacheKey]*list.Element
}

type cacheKey struct {
	kind Kind
	expr string
}

type cacheEntry struct {
	key     cacheKey
	program *Program
}

func newCache(max int) *cache {
	return &cache{max: max, order: list.New(), entries: make(map[cacheKey]*list.Element, max)}
}

func (c *cache) get(key cacheKey) (*Program, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry).program, true
}

// put stores p unless another goroutine compiled the same key first, in which case both
// programs are equivalent and the first one stays.
func (c *cache) put(key cacheKey, p *Program) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.order.MoveToFront(el)
		return
	}
	c.entries[key] = c.order.PushFront(&cacheEntry{key: key, program: p})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
}

// len reports how many programs are cached.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
