-- Did the vendor get every billable call? For each settled daily file (its manifest), the latest-version
-- rows the lake holds for that file's window against the rows the file holds; then the lake's rows that
-- no settled file covers, per UTC day. status: match | mismatch | not settled.
-- settled_manifests reads the billing-YYYY-MM-DD.manifest.json objects the daily export writes.
WITH settled AS (
    SELECT
        "date" AS settled_date,
        "rows" AS settled_rows,
        CAST(window_start_utc AS timestamp) AS window_start,
        CAST(window_end_utc AS timestamp) AS window_end
    FROM settled_manifests
    WHERE "date" IS NOT NULL
),
settled_days AS (
    SELECT
        s.settled_date AS billing_date,
        s.settled_rows,
        count(l.contact_id) AS lake_rows
    FROM settled AS s
    LEFT JOIN latest_billing_rows AS l
        ON l.initiation_timestamp >= s.window_start AND l.initiation_timestamp < s.window_end
    GROUP BY s.settled_date, s.settled_rows
),
unsettled_days AS (
    SELECT
        concat(l.year, '-', l.month, '-', l.day) AS billing_date,
        CAST(NULL AS bigint) AS settled_rows,
        count(*) AS lake_rows
    FROM latest_billing_rows AS l
    LEFT JOIN settled AS s
        ON l.initiation_timestamp >= s.window_start AND l.initiation_timestamp < s.window_end
    WHERE s.settled_date IS NULL
    GROUP BY l.year, l.month, l.day
)
SELECT
    billing_date,
    lake_rows,
    settled_rows,
    CASE
        WHEN settled_rows IS NULL THEN 'not settled'
        WHEN settled_rows = lake_rows THEN 'match'
        ELSE 'mismatch'
    END AS status
FROM (
    SELECT * FROM settled_days
    UNION ALL
    SELECT * FROM unsettled_days
) AS days
ORDER BY billing_date, status
