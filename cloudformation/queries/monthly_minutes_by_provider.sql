-- Billable minutes and call counts per provider extension and month (latest version of each contact).
-- Months are those of the partitions: the initiation time in UTC. An empty extension means the provider
-- was not known when the contact was billed.
SELECT
    year,
    month,
    provider_extension,
    count(*) AS calls,
    sum(duration_seconds) AS billable_seconds,
    round(sum(duration_seconds) / 60.0, 2) AS billable_minutes
FROM latest_billing_rows
GROUP BY year, month, provider_extension
ORDER BY year, month, provider_extension
