-- SPDX-License-Identifier: Apache-2.0
-- The catalog example's schema (PostgreSQL 12+). Unqualified names: the
-- tables go into the connection's search_path (the tests give each test its
-- own schema).

CREATE TABLE products (
  id          bigint      PRIMARY KEY,
  name        text        NOT NULL,
  price_cents bigint      NOT NULL CHECK (price_cents >= 0),
  -- bumped by every price change; a write-through UPDATE names the version it
  -- read, so two writers cannot both win (optimistic concurrency).
  version     bigint      NOT NULL DEFAULT 1,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
  id         bigint      PRIMARY KEY,
  customer   text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE order_items (
  order_id   bigint NOT NULL REFERENCES orders (id),
  product_id bigint NOT NULL REFERENCES products (id),
  qty        int    NOT NULL CHECK (qty > 0),
  PRIMARY KEY (order_id, product_id)
);

-- Per-product view counters, written back in batches. version grows with
-- every increment; an upsert only moves a row forward (see catalog.cc).
CREATE TABLE product_views (
  product_id bigint PRIMARY KEY REFERENCES products (id),
  views      bigint NOT NULL,
  version    bigint NOT NULL
);

-- catalog_seed(products, orders, items_per_order): deterministic data.
-- Product g costs 100 + (g * 7919) % 100000 cents; order o holds
-- items_per_order distinct products (needs 7 * items_per_order < products).
CREATE FUNCTION catalog_seed(n_products int, n_orders int, items_per_order int)
RETURNS void LANGUAGE sql AS $$
  INSERT INTO products (id, name, price_cents)
    SELECT g, 'product ' || g, 100 + (g::bigint * 7919) % 100000
    FROM generate_series(1, n_products) AS g;
  INSERT INTO orders (id, customer)
    SELECT o, 'customer ' || o FROM generate_series(1, n_orders) AS o;
  INSERT INTO order_items (order_id, product_id, qty)
    SELECT o, 1 + (o::bigint * 1009 + i * 7) % n_products, 1 + i % 3
    FROM generate_series(1, n_orders) AS o, generate_series(0, items_per_order - 1) AS i
    ON CONFLICT DO NOTHING;
$$;
