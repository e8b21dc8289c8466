SELECT
    CAST(strftime(budget_month, '%Y%m%d') AS INTEGER) AS calendar_month_key,
    category,
    region,
    budget_amount
FROM base.finance_budget
