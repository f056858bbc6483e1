-- list_deliveries(status => 'sending') in database bench_delivery, whose worker counts
-- its claims (src/sending_counts.c), for tenant bench with :deliveries delivered
-- deliveries and :phase (none, or some hanging at their endpoint in flight): median
-- and slowest of 7 calls, 50 rows a call, beside the same calls' statement with the
-- caller's limit (_list_deliveries_sql(), EXECUTEd directly): the walk of the tenant's
-- deliveries that the call made before the counts, and still makes without a worker.
SET integration.tenant_id = 'bench';
CREATE TEMP TABLE q (n serial, label text, sql text, tenant text DEFAULT 'bench');
INSERT INTO q (label, sql) VALUES
	('list_deliveries(50, status => ''sending'')',
	 'SELECT * FROM integration.list_deliveries(50, status => ''sending'')'),
	('  the walk it made before',
	 'SELECT * FROM (' || integration._list_deliveries_sql('bench', 50, NULL, 'sending', NULL, NULL, NULL, NULL) || ') w'),
	('  event => hang.x',
	 'SELECT * FROM integration.list_deliveries(50, status => ''sending'', event => ''hang.x'')'),
	('  the walk it made before',
	 'SELECT * FROM (' || integration._list_deliveries_sql('bench', 50, NULL, 'sending', 'hang.x', NULL, NULL, NULL) || ') w');
\echo
\echo 'sending:' :deliveries 'deliveries delivered in the tenant,' :phase
SELECT format('  _sending_bound() = %s', coalesce(integration._sending_bound()::text, 'NULL'))
\g (tuples_only=on format=unaligned)
\ir time_calls.sql
