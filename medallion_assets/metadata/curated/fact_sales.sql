-- Order date and ship date both play dim_calendar (roles "order" and "ship"); the customer
-- version is picked by the order date (scd2_date_column in model.yaml).
SELECT
    order_line_id AS order_line_key,
    order_id AS order_key,
    line_number,
    CAST(strftime(order_date, '%Y%m%d') AS INTEGER) AS calendar_order_key,
    CAST(strftime(ship_date, '%Y%m%d') AS INTEGER) AS calendar_ship_key,
    customer_id AS customer_key,
    product_id AS product_key,
    employee_id AS employee_key,
    quantity,
    unit_price,
    amount
FROM base.erp_sales_order_line
WHERE NOT lh_is_deleted
