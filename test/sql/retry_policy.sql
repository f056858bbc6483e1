-- Retry schedule, jitter and Retry-After (src/retry_policy.c), without sleeping: the
-- jitter draw and the header are arguments of integration.retry_delay().
-- integration.max_retry_after is at its default, 1 hour.

-- The default schedule: 8 attempts, the delays of the issue, ±20% jitter.
SELECT attempts_done,
       integration.retry_delay(attempts_done, NULL, NULL, 0.5) AS middle,
       integration.retry_delay(attempts_done, NULL, NULL, 0) AS earliest,
       integration.retry_delay(attempts_done, NULL, NULL, 0.999999) AS latest
  FROM generate_series(1, 8) AS attempts_done;

-- Random jitter stays within ±20%.
SELECT bool_and(d BETWEEN interval '4 s' AND interval '6 s') AS within_20_percent
  FROM (SELECT integration.retry_delay(1) AS d FROM generate_series(1, 1000)) s;

-- A schedule of its own; an empty one means no retry at all.
SELECT integration.retry_delay(1, '500ms, 2min, 1h', NULL, 0.5),
       integration.retry_delay(3, '500ms, 2min, 1h', NULL, 0.5),
       integration.retry_delay(4, '500ms, 2min, 1h', NULL, 0.5),
       integration.retry_delay(1, '', NULL, 0.5);

-- Malformed schedules.
SELECT integration.retry_delay(1, '5 parsecs');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.retry_delay(1, '5s,,10s');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.retry_delay(1, '31d');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.retry_delay(1, NULL, NULL, 1.0);
\echo :LAST_ERROR_SQLSTATE

-- Retry-After in seconds replaces the schedule, clamped to [1 s, max_retry_after].
SELECT integration.retry_delay(1, NULL, '120', 0.5) AS seconds,
       integration.retry_delay(1, NULL, '0', 0.5) AS at_least_one_second,
       integration.retry_delay(1, NULL, '999999', 0.5) AS clamped;
-- An HTTP date in the past means now (so 1 s).
SELECT integration.retry_delay(1, NULL, 'Wed, 21 Oct 2015 07:28:00 GMT', 0.5) AS past_date;
-- A date far in the future is clamped too.
SELECT integration.retry_delay(1, NULL, 'Fri, 31 Dec 9999 23:59:59 GMT', 0.5) AS future_date;
-- Anything else is ignored and the schedule applies (a huge number of seconds is
-- clamped, as above): a receiver cannot make the
-- worker fail with an odd header (an unknown time zone once could).
SELECT integration.retry_delay(1, NULL, h, 0.5) AS ignored
  FROM unnest(ARRAY['Wed, 21 Oct 2015 07:28:00 Foo/Bar', 'soon', '-5', '12abc', '',
                    'Wed, 32 Oct 2015 07:28:00 GMT', 'Wed, 21 Oct 2015 07:28:00 GMT trailing',
                    repeat('9', 100)]) AS h;
-- No attempt left: Retry-After does not add one.
SELECT integration.retry_delay(8, NULL, '120', 0.5) AS none_left;
