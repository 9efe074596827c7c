-- Placeholder: version 4 is reserved for a migration of another branch
-- (migrations must be numbered without gaps). Replace this file with that
-- migration when the branches meet; it changes nothing.
SELECT 1;
