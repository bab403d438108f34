package store

import (
	"container/list"
	"sync"
)

// userLRU is a cache of immutable values by message id, each carrying its
// user, bounded by the bytes its values cost, least recently used out
// first: the process's caches of message texts (textcache.go) and of
// unchanging FETCH data (metacache.go). get serves a value to its user
// only.
type userLRU[V any] struct {
	mu      sync.Mutex
	max     int64 // bytes; <= 0: keeps nothing
	largest int64 // a value costing more is not kept
	size    int64
	cost    func(V) int64
	m       map[int64]*list.Element
	lru     list.List // front: most recently used; values *lruEntry[V]
}

type lruEntry[V any] struct {
	id, userID int64
	v          V
}

func newUserLRU[V any](max, largest int64, cost func(V) int64) *userLRU[V] {
	return &userLRU[V]{max: max, largest: largest, cost: cost, m: map[int64]*list.Element{}}
}

func (c *userLRU[V]) get(userID, id int64) (v V, ok bool) {
	if c == nil || c.max <= 0 {
		return v, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || e.Value.(*lruEntry[V]).userID != userID {
		return v, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*lruEntry[V]).v, true
}

func (c *userLRU[V]) put(userID, id int64, v V) {
	if c == nil || c.max <= 0 {
		return
	}
	n := c.cost(v)
	if n > c.largest || n > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; ok {
		return
	}
	c.m[id] = c.lru.PushFront(&lruEntry[V]{id: id, userID: userID, v: v})
	c.size += n
	for c.size > c.max {
		e := c.lru.Back()
		old := e.Value.(*lruEntry[V])
		c.lru.Remove(e)
		delete(c.m, old.id)
		c.size -= c.cost(old.v)
	}
}

// used returns the bytes kept and the bound.
func (c *userLRU[V]) used() (size, max int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size, c.max
}
