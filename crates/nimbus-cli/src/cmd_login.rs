//! `nimbus login <store>` and `nimbus logout <store>`: keep a store's
//! credentials in the system keyring, so later commands and mounts find
//! them without a prompt or environment variables.

use anyhow::{Context, Result};
use nimbus_backend::StoreUrl;
use std::process::ExitCode;

use crate::args::GlobalArgs;
use crate::credentials;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The store: s3://bucket/folder?endpoint=URL or webdav(s)://user@host/folder.
    pub store: String,
}

pub async fn login(_g: &GlobalArgs, a: Args) -> Result<ExitCode> {
    let url = StoreUrl::parse(&a.store)?;
    let creds = credentials::ask_new(&url)?;
    let text = credentials::saved_text(&creds).context("nothing to save")?;
    // Check them before saving: one listing of the store.
    let access = nimbus_backend::StoreAccess {
        credentials: creds,
        limits: None,
    };
    let backend = nimbus_backend::open_store_with(&url, &access)?;
    backend
        .list("config")
        .await
        .with_context(|| format!("the credentials for {url} did not work, so they were not saved"))?;
    credentials::keyring_set(&url, &text)?;
    println!("The credentials work and are saved in the system keyring for {url}.");
    Ok(ExitCode::SUCCESS)
}

pub fn logout(_g: &GlobalArgs, a: Args) -> Result<ExitCode> {
    let url = StoreUrl::parse(&a.store)?;
    if credentials::keyring_delete(&url)? {
        println!("Deleted the saved credentials for {url}.");
    } else {
        println!("No credentials were saved for {url}.");
    }
    Ok(ExitCode::SUCCESS)
}
