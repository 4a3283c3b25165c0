-- A contact's creation and identification are facts of its own row, as Mautic treats
-- them: the timeline derives `lead.create`, `lead.apiadded` and `lead.identified` from
-- `date_added`, `created_by` and `date_identified` (`store::events`) instead of storing
-- three event rows and six index entries per new contact. The columns below say by which
-- channel (api, import, tracking, form, admin, plugin) the contact was created and
-- identified; NULL means "stored as event rows": contacts from before this migration
-- keep theirs, and a merge turns both contacts' derived events into rows.
ALTER TABLE contacts ADD COLUMN created_source TEXT;
ALTER TABLE contacts ADD COLUMN identified_source TEXT;
