package store

import "github.com/jackc/pgx/v5/pgxpool"

// Pool gives the store's own tests the pool, to read and change rows below
// the store's methods.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
