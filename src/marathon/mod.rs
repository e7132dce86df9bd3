//! The Marathon REST API v2 client.
