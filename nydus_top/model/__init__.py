"""The models the screens read: the node (from NRI), one trace and its curated list, record types."""
