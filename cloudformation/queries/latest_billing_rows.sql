-- Latest version of every contact: the view the other billing queries build on.
-- Connect republishes a CTR when its attributes change after the contact ends (same contact_id, later
-- last_update_timestamp) and Firehose delivers at least once, so billing_rows keeps every copy.
-- Every copy of a contact lands in the partition of its initiation time, so the window is partitioned by
-- year, month, day as well: that changes no answer and lets Athena push partition filters through the view.
-- Ties (a redelivered identical copy) are broken over every column, so the chosen row is deterministic.
CREATE OR REPLACE VIEW latest_billing_rows AS
SELECT
    call_type,
    initiation_timestamp,
    duration_seconds,
    patient_phone,
    provider_extension,
    hold_seconds,
    contact_id,
    initial_contact_id,
    previous_contact_id,
    channel,
    initiation_method,
    connected_to_agent_timestamp,
    disconnect_timestamp,
    last_update_timestamp,
    agent_id,
    agent_username,
    queue_name,
    number_of_holds,
    disconnect_reason,
    provider_left_timestamp,
    contact_duration_seconds,
    next_contact_id,
    year,
    month,
    day
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY year, month, day, contact_id
            ORDER BY
                last_update_timestamp DESC NULLS LAST,
                disconnect_timestamp DESC,
                duration_seconds DESC,
                hold_seconds DESC,
                provider_extension DESC,
                connected_to_agent_timestamp DESC,
                number_of_holds DESC,
                agent_id DESC,
                agent_username DESC,
                queue_name DESC,
                disconnect_reason DESC,
                call_type DESC,
                patient_phone DESC,
                initial_contact_id DESC,
                previous_contact_id DESC,
                channel DESC,
                initiation_method DESC,
                initiation_timestamp DESC,
                provider_left_timestamp DESC,
                contact_duration_seconds DESC,
                next_contact_id DESC
        ) AS version_rank
    FROM billing_rows
) AS ranked
WHERE version_rank = 1
