use bgagent::{BackgroundManager, Options};

fn main() -> bgagent::Result<()> {
    bgagent::init(); // first: this program is also its tasks' supervisor
    let bg = BackgroundManager::new(Options::default())?;
    println!("{}", bg.run("sleep 1 && echo installed"));
    println!("{}", bg.check(None)); // 1f2e3d4c: [running] sleep 1 && echo installed
    for n in bg.wait_for_notifications(None) {
        println!("[bg:{}] {}: {}", n.task_id, n.status, n.result);
    }
    Ok(()) // dropping the manager stops whatever still runs
}
