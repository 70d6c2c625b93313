-- SPDX-License-Identifier: Apache-2.0
-- The catalog example's data: 1,000 products and 20 orders of 100 items.
SELECT catalog_seed(1000, 20, 100);
