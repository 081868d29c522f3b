-- Contacts with more than one version (Connect republished the CTR with a later LastUpdateTimestamp)
-- and which billing fields changed between the first and the latest version.
-- A redelivered identical copy (same last_update_timestamp) is not a new version.
WITH per_contact AS (
    SELECT
        contact_id,
        count(DISTINCT last_update_timestamp) AS versions,
        min(last_update_timestamp) AS first_update,
        max(last_update_timestamp) AS latest_update,
        min_by(duration_seconds, last_update_timestamp) AS first_duration_seconds,
        max_by(duration_seconds, last_update_timestamp) AS latest_duration_seconds,
        min_by(provider_extension, last_update_timestamp) AS first_provider_extension,
        max_by(provider_extension, last_update_timestamp) AS latest_provider_extension,
        min_by(hold_seconds, last_update_timestamp) AS first_hold_seconds,
        max_by(hold_seconds, last_update_timestamp) AS latest_hold_seconds,
        min_by(disconnect_timestamp, last_update_timestamp) AS first_disconnect_timestamp,
        max_by(disconnect_timestamp, last_update_timestamp) AS latest_disconnect_timestamp,
        min_by(agent_id, last_update_timestamp) AS first_agent_id,
        max_by(agent_id, last_update_timestamp) AS latest_agent_id
    FROM billing_rows
    GROUP BY year, month, day, contact_id
)
SELECT
    contact_id,
    versions,
    first_update,
    latest_update,
    concat_ws(
        ',',
        CASE WHEN first_duration_seconds IS DISTINCT FROM latest_duration_seconds THEN 'duration_seconds' END,
        CASE WHEN first_provider_extension IS DISTINCT FROM latest_provider_extension THEN 'provider_extension' END,
        CASE WHEN first_hold_seconds IS DISTINCT FROM latest_hold_seconds THEN 'hold_seconds' END,
        CASE WHEN first_disconnect_timestamp IS DISTINCT FROM latest_disconnect_timestamp THEN 'disconnect_timestamp' END,
        CASE WHEN first_agent_id IS DISTINCT FROM latest_agent_id THEN 'agent_id' END
    ) AS changed_columns,
    first_duration_seconds,
    latest_duration_seconds,
    first_provider_extension,
    latest_provider_extension
FROM per_contact
WHERE versions > 1
ORDER BY latest_update, contact_id
