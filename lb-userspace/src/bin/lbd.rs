//! lbd, the controller daemon. (The config-driven daemon arrives with the lbd issue;
//! for now it loads the data plane and reports what it loaded.)
fn main() -> anyhow::Result<()> {
    let dp = lb_userspace::dataplane::Dataplane::load(&Default::default())?;
    println!("data plane loaded; config: {:?}", dp.config()?);
    Ok(())
}
