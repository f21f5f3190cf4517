-- Indexes for lookups that read whole tables (db::tests::every_lookup_column_is_indexed):
-- a release's approval signers (the device's update answer, the release page and the
-- signer-combination rule looked them up by release for every request and every new
-- release), a release's refunded devices (the manufacturer's private release list) and
-- a manufacturer's signer-set members (the dashboard's manufacturer page).
CREATE INDEX release_approval_signers_release ON release_approval_signers (release_id);
CREATE INDEX refund_devices_release ON refund_devices (release_id);
CREATE INDEX signer_set_members_manufacturer ON signer_set_members (manufacturer_id);
