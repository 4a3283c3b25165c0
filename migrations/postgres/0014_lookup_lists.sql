-- A lookup field's list is plain values, as Mautic's clients send and read them back;
-- the default title field was stored with {label, value} objects like a select's.
UPDATE contact_fields
SET properties = '{"list":["Mr","Mrs","Miss"]}'
WHERE alias = 'title' AND type = 'lookup'
  AND properties = '{"list":[{"label":"Mr","value":"Mr"},{"label":"Mrs","value":"Mrs"},{"label":"Miss","value":"Miss"}]}';
