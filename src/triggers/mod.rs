//! Triggers: the events from outside that start executions (MQTT topics as AWS IoT Rules do,
//! HTTP routes as API Gateway does, schedules as EventBridge Scheduler does). Each kind owns
//! its config section and a build function; every trigger reaches the engine through the one
//! `Starter` handle. The languages the triggers speak (IoT SQL, schedule
//! expressions) are pure modules here, with no I/O, like `asl/`.
