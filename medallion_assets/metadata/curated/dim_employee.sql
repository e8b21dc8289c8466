-- Works whether base keeps employee as scd1 or scd2: take each key's latest row (a deletion
-- version sorts first on a tie) and drop deleted keys.
SELECT
    employee_id AS employee_key,
    first_name,
    last_name,
    first_name || ' ' || last_name AS full_name,
    title,
    region,
    manager_id AS manager_employee_key,
    hire_date,
    modified_at
FROM (
    SELECT
        *,
        row_number() OVER (PARTITION BY employee_id ORDER BY modified_at DESC, lh_is_deleted DESC) AS version_rank
    FROM base.erp_employee
) AS latest
WHERE version_rank = 1 AND NOT lh_is_deleted
