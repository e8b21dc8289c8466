SELECT
    product_id AS product_key,
    product_name,
    category,
    subcategory,
    list_price,
    modified_at
FROM base.erp_product
WHERE NOT lh_is_deleted
