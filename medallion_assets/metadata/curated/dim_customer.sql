-- The customers as base holds them now; the dimension keeps its own history across loads
-- (valid from modified_at). Deleted customers vanish here and are soft-deleted (full_load).
SELECT
    customer_id AS customer_key,
    customer_name,
    email,
    segment,
    city,
    country,
    created_at,
    modified_at
FROM base.erp_customer
WHERE lh_is_current AND NOT lh_is_deleted
