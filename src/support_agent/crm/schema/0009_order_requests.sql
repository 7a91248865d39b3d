-- What a write requested on an order, as the retail data model records it (tau2-bench retail:
-- "orders can have other optional attributes based on the actions that have been taken"):
-- the cancellation reason, the items to return and where the refund goes, the items to exchange,
-- their replacements, the payment method for the price difference and the difference itself
-- (settled when the returned items arrive, not at the request).
ALTER TABLE orders
    ADD COLUMN cancel_reason text,
    ADD COLUMN return_items text[],
    ADD COLUMN return_payment_method_id text,
    ADD COLUMN exchange_items text[],
    ADD COLUMN exchange_new_items text[],
    ADD COLUMN exchange_payment_method_id text,
    ADD COLUMN exchange_price_difference numeric(12, 2);
