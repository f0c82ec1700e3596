-- The desired state now carries block indicators, which can be scoped to device groups:
-- one signed row per group (`group:<id>`), and `fleet` for agents of no group.
UPDATE desired_state SET name = 'fleet' WHERE name = 'containment';
