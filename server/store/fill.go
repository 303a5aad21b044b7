package store

import "context"

// fillStep is how many deposits FillDeposits adds a statement.
const fillStep = 100_000

// FillDeposits adds synthetic deposits from..to-1 of size bytes, named
// deposit-N and owned by one active client of an organization "bench" (with
// from 0 it first adds both), for measuring backup and restore at scale
// (kts-bench bench backup). They are written without audit records, and the
// table is analyzed afterwards.
func (s *Store) FillDeposits(ctx context.Context, from, to, size int) error {
	if from == 0 {
		if _, err := s.pool.Exec(ctx, `INSERT INTO organizations(uuid, name, auth_hash) VALUES ('bench', 'bench', '');
			INSERT INTO clients(fingerprint, org_uuid, key_id, public_key, state) VALUES (repeat('B', 40), 'bench', 'bench', '\x00', 'active')`); err != nil {
			return err
		}
	}
	for lo := from; lo < to; lo += fillStep {
		hi := min(lo+fillStep, to)
		_, err := s.pool.Exec(ctx, `INSERT INTO deposits(owner, name, kek_id, wrapped_key, ciphertext, size)
			SELECT repeat('B', 40), 'deposit-' || i, 'bench-key',
				decode(md5(i::text) || md5((i + 1)::text) || md5((i + 2)::text), 'hex'),
				substr(decode(repeat(md5(i::text), ($3 + 15) / 16), 'hex'), 1, $3), $3
			FROM generate_series($1::int, $2::int - 1) i`, lo, hi, size)
		if err != nil {
			return err
		}
	}
	_, err := s.pool.Exec(ctx, "VACUUM ANALYZE deposits")
	return err
}
