//! Waiting for the cluster to get somewhere: ask what is still pending,
//! again and again, until nothing is or the time is up.

use std::time::{Duration, Instant};

/// Ask `pending` every `poll` what is not yet as wanted. An empty answer
/// ends the wait; when `timeout` passes, the last answer is returned, for
/// the caller to say what is stuck. Errors end the wait at once.
pub async fn until_none_pending<P, E>(
    timeout: Duration,
    poll: Duration,
    mut pending: impl AsyncFnMut() -> Result<Vec<P>, E>,
) -> Result<Vec<P>, E> {
    let started = Instant::now();
    loop {
        let left = pending().await?;
        if left.is_empty() || started.elapsed() >= timeout {
            return Ok(left);
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn it_asks_until_nothing_is_pending_or_time_is_up() {
        let mut asked = 0;
        let done = until_none_pending(Duration::from_secs(5), Duration::from_millis(1), async || {
            asked += 1;
            Ok::<_, ()>(if asked < 3 { vec!["not yet"] } else { vec![] })
        })
        .await
        .unwrap();
        assert!(done.is_empty());
        assert_eq!(asked, 3);
        let stuck =
            until_none_pending(Duration::from_millis(5), Duration::from_millis(1), async || Ok::<_, ()>(vec!["stuck"]))
                .await
                .unwrap();
        assert_eq!(stuck, ["stuck"]);
        let failed =
            until_none_pending(Duration::from_secs(5), Duration::from_millis(1), async || Err::<Vec<()>, _>("boom"))
                .await;
        assert_eq!(failed, Err("boom"));
    }
}
