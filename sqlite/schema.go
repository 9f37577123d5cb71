package sqlite

// migrations are the SQLite schema's versions, in order (sqlstore.Dialect.Migrations).
var migrations = []string{
	// 1: the first schema.
	`CREATE TABLE users (
		id INTEGER PRIMARY KEY,
		name TEXT NOT NULL UNIQUE,
		tier TEXT NOT NULL,
		admin INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE api_keys (
		id INTEGER PRIMARY KEY,
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		hash TEXT NOT NULL UNIQUE,
		prefix TEXT NOT NULL,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE events (
		id INTEGER PRIMARY KEY,
		user_id INTEGER NOT NULL REFERENCES users(id),
		name TEXT NOT NULL,
		spec TEXT NOT NULL,
		enabled INTEGER NOT NULL,
		last_fire INTEGER,
		deleted INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL
	);
	CREATE UNIQUE INDEX events_user_name ON events(user_id, name) WHERE deleted = 0;
	CREATE TABLE executions (
		id TEXT PRIMARY KEY,
		event_id INTEGER NOT NULL REFERENCES events(id),
		user_id INTEGER NOT NULL REFERENCES users(id),
		trigger TEXT NOT NULL,
		scheduled_at INTEGER,
		queued_at INTEGER NOT NULL,
		not_before INTEGER NOT NULL,
		started_at INTEGER,
		finished_at INTEGER,
		status TEXT NOT NULL,
		outcome TEXT NOT NULL DEFAULT '',
		exit_code INTEGER,
		attempt INTEGER NOT NULL,
		reason TEXT NOT NULL DEFAULT '',
		strategy TEXT NOT NULL,
		priority INTEGER NOT NULL DEFAULT 0,
		node TEXT NOT NULL DEFAULT '',
		error TEXT NOT NULL DEFAULT '',
		input BLOB,
		result TEXT,
		log_bytes INTEGER NOT NULL DEFAULT 0,
		log_truncated INTEGER NOT NULL DEFAULT 0,
		retry_of TEXT NOT NULL DEFAULT ''
	);
	CREATE UNIQUE INDEX executions_scheduled ON executions(event_id, scheduled_at) WHERE scheduled_at IS NOT NULL;
	CREATE INDEX executions_status ON executions(status, not_before);
	CREATE INDEX executions_user ON executions(user_id, queued_at);
	CREATE INDEX executions_queue ON executions(status, user_id, priority DESC, queued_at, id);
	CREATE INDEX executions_event ON executions(event_id, status);
	CREATE TABLE logs (
		execution_id TEXT NOT NULL,
		seq INTEGER NOT NULL,
		stream INTEGER NOT NULL,
		data BLOB NOT NULL,
		PRIMARY KEY (execution_id, seq)
	) WITHOUT ROWID;`,
	// 2: the runtime API (variables, output, condition) and secrets.
	`CREATE TABLE variables (
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		key TEXT NOT NULL,
		value TEXT NOT NULL,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (user_id, key)
	) WITHOUT ROWID;
	CREATE TABLE secrets (
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		name TEXT NOT NULL,
		key_id TEXT NOT NULL,
		blob BLOB NOT NULL,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (user_id, name)
	) WITHOUT ROWID;
	ALTER TABLE executions ADD COLUMN output TEXT;
	ALTER TABLE executions ADD COLUMN condition INTEGER;`,
	// 3: why an execution got its sandbox strategy.
	`ALTER TABLE executions ADD COLUMN strategy_reason TEXT NOT NULL DEFAULT '';`,
	// 4: the warm sandbox an execution runs in, to re-attach after a crash.
	`ALTER TABLE executions ADD COLUMN sandbox TEXT NOT NULL DEFAULT '';`,
	// 5: the notification outbox.
	`CREATE TABLE notifications (
		id TEXT PRIMARY KEY,
		execution_id TEXT NOT NULL,
		user_id INTEGER NOT NULL REFERENCES users(id),
		channel TEXT NOT NULL,
		reason TEXT NOT NULL,
		message TEXT NOT NULL,
		status TEXT NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		next_at INTEGER NOT NULL,
		claimed_until INTEGER NOT NULL DEFAULT 0,
		last_error TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		sent_at INTEGER
	);
	CREATE INDEX notifications_due ON notifications(status, next_at);
	CREATE UNIQUE INDEX notifications_execution ON notifications(execution_id, channel, reason);
	CREATE INDEX notifications_claimed ON notifications(user_id, channel, claimed_until) WHERE status = 'pending';`,
	// 6: key names, expiry and revocation; deleted users; the audit log.
	`ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';
	ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
	ALTER TABLE api_keys ADD COLUMN revoked_at INTEGER;
	ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
	ALTER TABLE users ADD COLUMN deleted_at INTEGER;
	CREATE TABLE audit (
		id INTEGER PRIMARY KEY,
		at INTEGER NOT NULL,
		actor TEXT NOT NULL,
		key_id INTEGER NOT NULL DEFAULT 0,
		action TEXT NOT NULL,
		target TEXT NOT NULL,
		detail TEXT NOT NULL DEFAULT '',
		source TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX audit_actor ON audit(actor, id);`,
	// 7: an execution's retry, found from the execution it retries.
	`CREATE INDEX executions_retry_of ON executions(retry_of) WHERE retry_of != '';`,
	// 8: chains: the execution whose end triggered this one.
	`ALTER TABLE executions ADD COLUMN chained_from TEXT NOT NULL DEFAULT '';
	ALTER TABLE executions ADD COLUMN chain_depth INTEGER NOT NULL DEFAULT 0;`,
	// 9: when each log chunk was received (0: before this column).
	`ALTER TABLE logs ADD COLUMN at INTEGER NOT NULL DEFAULT 0;`,
	// 10: the first execution of a chain, to bound the runs it starts.
	`ALTER TABLE executions ADD COLUMN chain_root TEXT NOT NULL DEFAULT '';
	CREATE INDEX executions_chain_root ON executions(chain_root) WHERE chain_root != '';`,
	// 11: users' own notification channels, sealed like secrets.
	`CREATE TABLE channels (
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		name TEXT NOT NULL,
		type TEXT NOT NULL,
		key_id TEXT NOT NULL,
		blob BLOB NOT NULL,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (user_id, name)
	);`,
	// 12: several nodes: node leases, launched and cancel-requested executions.
	`ALTER TABLE executions ADD COLUMN launched_at INTEGER;
	ALTER TABLE executions ADD COLUMN cancel_reason TEXT NOT NULL DEFAULT '';
	CREATE INDEX executions_running ON executions(node, user_id) WHERE status = 'running';
	CREATE TABLE nodes (
		name TEXT PRIMARY KEY,
		instance TEXT NOT NULL,
		host TEXT NOT NULL,
		data_dir TEXT NOT NULL,
		engine TEXT NOT NULL,
		engine_key TEXT NOT NULL,
		capacity INTEGER NOT NULL,
		running INTEGER NOT NULL DEFAULT 0,
		version TEXT NOT NULL DEFAULT '',
		started_at BIGINT NOT NULL,
		heartbeat_at BIGINT NOT NULL,
		lease_until BIGINT NOT NULL,
		state TEXT NOT NULL,
		down_reason TEXT NOT NULL DEFAULT ''
	);`,
	// 13: usage and cost per user, event and UTC day, summed as integers
	// when each execution finishes (exact, and kept when retention deletes
	// the executions); filled from the results of executions stored before.
	`CREATE TABLE usage_days (
		user_id INTEGER NOT NULL,
		event_id INTEGER NOT NULL,
		day INTEGER NOT NULL,
		executions INTEGER NOT NULL DEFAULT 0,
		cpu_us INTEGER NOT NULL DEFAULT 0,
		reserved_mib_ms INTEGER NOT NULL DEFAULT 0,
		peak_memory INTEGER NOT NULL DEFAULT 0,
		io_read INTEGER NOT NULL DEFAULT 0,
		io_write INTEGER NOT NULL DEFAULT 0,
		net_bytes INTEGER NOT NULL DEFAULT 0,
		cost_micros INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (user_id, day, event_id)
	);
	CREATE INDEX usage_days_day ON usage_days(day);
	INSERT INTO usage_days(user_id, event_id, day, executions, cpu_us, peak_memory, net_bytes)
		SELECT user_id, event_id, finished_at / 86400000000000, COUNT(*), SUM(CAST(ROUND(COALESCE(json_extract(result, '$.usage.cpu_seconds'), 0) * 1000000) AS INTEGER)), MAX(COALESCE(json_extract(result, '$.usage.peak_memory_bytes'), 0)), SUM(COALESCE(json_extract(result, '$.usage.network.bytes_in'), 0) + COALESCE(json_extract(result, '$.usage.network.bytes_out'), 0))
		FROM executions WHERE finished_at IS NOT NULL AND result IS NOT NULL AND json_valid(result) GROUP BY user_id, event_id, finished_at / 86400000000000;`,
	// 14: sandboxes of failed runs kept for debugging: until when, on which node.
	`ALTER TABLE executions ADD COLUMN kept_until INTEGER;
	ALTER TABLE executions ADD COLUMN kept_node TEXT NOT NULL DEFAULT '';
	CREATE INDEX executions_kept ON executions(kept_until) WHERE kept_until IS NOT NULL;`,
}
