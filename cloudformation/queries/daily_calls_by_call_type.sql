-- Calls and billable minutes per day (UTC, the partition day) and call type (INBOUND / OUTBOUND),
-- latest version of each contact.
SELECT
    concat(year, '-', month, '-', day) AS call_date,
    call_type,
    count(*) AS calls,
    sum(duration_seconds) AS billable_seconds,
    round(sum(duration_seconds) / 60.0, 2) AS billable_minutes
FROM latest_billing_rows
GROUP BY year, month, day, call_type
ORDER BY year, month, day, call_type
