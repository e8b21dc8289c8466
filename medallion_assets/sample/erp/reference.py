"""Reference data of the sample ERP: regions, locations, segments, categories and the constants
the simulation draws from (shared with ``finance.py``, useful to tests and curated models)."""

from __future__ import annotations

from datetime import time

import numpy as np

REGIONS: tuple[str, ...] = ("North America", "Latin America", "Europe", "Asia Pacific")

# (city, country, region); city names are unique.
LOCATIONS: tuple[tuple[str, str, str], ...] = (
    ("New York", "United States", "North America"),
    ("Chicago", "United States", "North America"),
    ("Seattle", "United States", "North America"),
    ("Austin", "United States", "North America"),
    ("Toronto", "Canada", "North America"),
    ("Vancouver", "Canada", "North America"),
    ("Mexico City", "Mexico", "Latin America"),
    ("Sao Paulo", "Brazil", "Latin America"),
    ("Buenos Aires", "Argentina", "Latin America"),
    ("Bogota", "Colombia", "Latin America"),
    ("Santiago", "Chile", "Latin America"),
    ("London", "United Kingdom", "Europe"),
    ("Manchester", "United Kingdom", "Europe"),
    ("Paris", "France", "Europe"),
    ("Berlin", "Germany", "Europe"),
    ("Munich", "Germany", "Europe"),
    ("Amsterdam", "Netherlands", "Europe"),
    ("Madrid", "Spain", "Europe"),
    ("Sydney", "Australia", "Asia Pacific"),
    ("Melbourne", "Australia", "Asia Pacific"),
    ("Tokyo", "Japan", "Asia Pacific"),
    ("Singapore", "Singapore", "Asia Pacific"),
    ("Mumbai", "India", "Asia Pacific"),
    ("Seoul", "South Korea", "Asia Pacific"),
)
COUNTRY_REGION: dict[str, str] = {country: region for _, country, region in LOCATIONS}

CATEGORIES: tuple[str, ...] = ("Bikes", "Components", "Clothing", "Accessories")
SUBCATEGORIES: dict[str, tuple[str, ...]] = {
    "Bikes": ("Road Bikes", "Mountain Bikes", "Touring Bikes", "E-Bikes"),
    "Components": ("Frames", "Wheels", "Brakes", "Drivetrains", "Handlebars", "Saddles"),
    "Clothing": ("Jerseys", "Shorts", "Gloves", "Jackets", "Socks"),
    "Accessories": ("Helmets", "Lights", "Locks", "Bottles", "Pumps", "Bags"),
}
# Share of products per category and list price range (USD) per category.
CATEGORY_WEIGHTS: tuple[float, ...] = (0.2, 0.35, 0.2, 0.25)
CATEGORY_PRICE_RANGE: dict[str, tuple[float, float]] = {
    "Bikes": (450.0, 4500.0),
    "Components": (20.0, 900.0),
    "Clothing": (15.0, 180.0),
    "Accessories": (8.0, 250.0),
}

SEGMENTS: tuple[str, ...] = ("Consumer", "Corporate", "Small Business", "Prospect")
PROSPECT = "Prospect"
HEAD_TITLE = "Chief Sales Officer"
MANAGER_TITLE = "Regional Sales Manager"
REP_TITLES: tuple[str, ...] = ("Sales Representative", "Senior Sales Representative", "Account Manager", "Key Account Manager")

# Order-level discounts in percent and their probabilities; quantities are 1 + geometric.
DISCOUNTS = np.array([0, 5, 10, 15], dtype=np.int64)
DISCOUNT_P = (0.6, 0.2, 0.15, 0.05)
QUANTITY_P = 0.45
MAX_QUANTITY = 20

EXTRACT_TIME = time(22, 0)  # the nightly extract: the clock stands here at the end of a day
WORKDAY_START_S = 6 * 3600  # changes happen between 06:00:00 and 21:59:59
WORKDAY_END_S = 22 * 3600
HISTORY_ORDER_DAYS = 730
HISTORY_CUSTOMER_DAYS = 1095
MAX_LATE_DAYS = 2

FIRST_NAMES = (
    "Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Keiko", "Liam",
    "Maria", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera", "Wei", "Ximena",
    "Yusuf", "Zoe", "Aisha", "Bruno", "Chloe", "Diego", "Emma", "Felix", "Hana", "Ivan", "Julia", "Kofi",
)
LAST_NAMES = (
    "Smith", "Garcia", "Muller", "Rossi", "Dubois", "Tanaka", "Kim", "Silva", "Novak", "Jensen", "Khan",
    "Lopez", "Brown", "Schmidt", "Moreau", "Sato", "Chen", "Costa", "Ivanova", "Larsen", "Patel", "Martin",
    "Wilson", "Becker", "Fontaine", "Suzuki", "Park", "Santos", "Horvat", "Nielsen", "Ali", "Torres",
)
EMAIL_DOMAINS = ("example.com", "mail.example", "inbox.example", "corp.example", "post.example")
MODEL_WORDS = ("Aero", "Summit", "Trail", "Urban", "Pro", "Sport", "Classic", "Apex", "Nova", "Ridge", "Velo", "Storm")

# One stream of random numbers per component, so adding draws to one does not shift the others.
SALTS = {
    "employee": 11, "product": 12, "customer": 13, "order_line": 14,
    "customer_delete": 21, "customer_update": 22, "customer_new": 23,
    "product_delete": 31, "product_price": 32, "product_new": 33,
    "employee_change": 41, "employee_hire": 42, "employee_leave": 43,
    "ship": 51, "correction": 52, "cancel": 53, "order_new": 54, "duplicate": 55,
}

DDL = (
    """CREATE TABLE customer (
        customer_id BIGINT PRIMARY KEY, customer_name VARCHAR NOT NULL, email VARCHAR, segment VARCHAR,
        city VARCHAR, country VARCHAR, created_at TIMESTAMP NOT NULL, modified_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE product (
        product_id BIGINT PRIMARY KEY, product_name VARCHAR NOT NULL, category VARCHAR, subcategory VARCHAR,
        list_price DECIMAL(12,2), modified_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE employee (
        employee_id BIGINT PRIMARY KEY, first_name VARCHAR, last_name VARCHAR, title VARCHAR, region VARCHAR,
        manager_id BIGINT, hire_date DATE, modified_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE sales_order_line (
        order_line_id BIGINT NOT NULL, order_id BIGINT NOT NULL, line_number INTEGER NOT NULL,
        order_date DATE NOT NULL, ship_date DATE, customer_id BIGINT NOT NULL, product_id BIGINT NOT NULL,
        employee_id BIGINT NOT NULL, quantity INTEGER NOT NULL, unit_price DECIMAL(12,2) NOT NULL,
        amount DECIMAL(14,2) NOT NULL, modified_at TIMESTAMP NOT NULL)""",
    "CREATE TABLE sample_clock (now_ts TIMESTAMP NOT NULL)",
)

SHIP_LAG_SQL = "(1 + (order_id * 2654435761) % 5)"


def ship_lag(order_ids: np.ndarray) -> np.ndarray:
    """Days from order to earliest shipping, a fixed function of the order id (same as the SQL)."""
    return 1 + (order_ids.astype(np.int64) * 2654435761) % 5
