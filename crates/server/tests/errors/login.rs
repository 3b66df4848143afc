//! Connection-opening errors: vhosts, passwords, the default user.

use super::*;

#[tokio::test]
async fn missing_vhost_is_530_connection_error() {
    let broker = TestBroker::start();
    run_test(async {
        let r = bounded(
            STEP,
            "connect to a missing vhost",
            connect_uri(&broker.uri_for("guest", "guest", "nosuchvhost")),
        )
        .await;
        assert_amqp_error(r, 530, "NOT_ALLOWED - vhost nosuchvhost not found");
        // The broker is fine.
        let conn = broker.connect().await;
        assert_works(&conn).await;
    })
    .await;
}

#[tokio::test]
async fn wrong_password_is_403() {
    let broker = TestBroker::start();
    run_test(async {
        let other = broker.connect().await;
        let r = bounded(
            STEP,
            "connect with a wrong password",
            connect_uri(&broker.uri_for("guest", "wrong", "%2f")),
        )
        .await;
        assert_amqp_error(
            r,
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. \
             For details see the broker logfile.",
        );
        let r = bounded(
            STEP,
            "connect as an unknown user",
            connect_uri(&broker.uri_for("nobody", "guest", "%2f")),
        )
        .await;
        assert_amqp_error(
            r,
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. \
             For details see the broker logfile.",
        );
        assert_works(&other).await;
    })
    .await;
}

#[tokio::test]
async fn default_user_from_environment() {
    let broker = TestBroker::start_with(
        &[],
        &[
            ("WARREN_DEFAULT_USER", "alice"),
            ("WARREN_DEFAULT_PASS", "s3cret"),
        ],
    );
    run_test(async {
        let conn = bounded(
            STEP,
            "connect as the configured user",
            connect_uri(&broker.uri_for("alice", "s3cret", "%2f")),
        )
        .await
        .expect("configured default user logs in");
        assert_works(&conn).await;
        let r = bounded(
            STEP,
            "connect as guest",
            connect_uri(&broker.uri_for("guest", "guest", "%2f")),
        )
        .await;
        assert_amqp_error(
            r,
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. \
             For details see the broker logfile.",
        );
    })
    .await;
}
