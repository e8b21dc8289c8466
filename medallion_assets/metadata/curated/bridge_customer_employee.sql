-- Customers and the employees who sold to them; SCD2 customers map to their current version.
SELECT
    customer_id AS customer_key,
    employee_id AS employee_key,
    count(*) AS order_lines,
    min(order_date) AS first_order_date,
    max(order_date) AS last_order_date
FROM base.erp_sales_order_line
WHERE NOT lh_is_deleted
GROUP BY customer_id, employee_id
