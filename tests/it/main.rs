//! lijian's integration tests: one binary, real PostgreSQL and RabbitMQ at the
//! LIJIAN_* addresses (defaults: 127.0.0.1:5432 and :5672). Every test gets its own
//! database and queue prefix, so tests run in parallel and clean up after
//! themselves; the only things faked are outside our walls.

mod helpers;

mod accounts;
mod api_status;
mod bad_input;
mod campaign_state;
mod campaigns;
mod catalogue_edit;
mod clean_exit;
mod cli;
mod console;
mod console_browser;
mod console_errors;
mod console_pages;
mod console_upload;
mod crash;
mod demo;
mod doctor;
mod footprint;
mod hangs;
mod intake;
mod issuance;
mod key_rotation;
mod late_coupons;
mod loads;
mod logs;
mod merchant_edit;
mod messages;
mod notifier;
mod notifier_docs;
mod notifier_edges;
mod openapi;
mod operators;
mod ops;
mod ops_endpoints;
mod order_query;
mod outage;
mod poison;
mod price_rules;
mod priority;
mod readme;
mod scale_out;
mod secrets;
mod signing;
mod slow_clients;
mod timeline;
mod undeliverable;
mod wxpay_protocol;
mod wxpay_sim;
