-- A tag's description, as Mautic's tags API takes and answers it (it was dropped).
ALTER TABLE tags ADD COLUMN description TEXT;
