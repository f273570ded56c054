//! The sizes of every scenario: a full run (the targets' sizes) and a `--quick` smoke run,
//! each overridable from the command line.

use crate::config::Args;

/// Sizes of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sizes {
    pub floor_samples: usize,
    pub floor_pool_secs: f64,
    pub rate: u32,
    pub delivery_secs: f64,
    pub dm_pairs: usize,
    pub channel_subscribers: usize,
    pub burst_senders: usize,
    pub burst_messages: usize,
    pub senders: Vec<usize>,
    pub throughput_secs: f64,
    pub fanout: Vec<usize>,
    pub fanout_messages: usize,
    pub frames_subscribers: usize,
    pub frames_messages: usize,
    pub connections: Vec<usize>,
    pub unread_rooms: usize,
    pub unread_per_room: usize,
    pub unread_users: usize,
    pub unread_viewers: usize,
    pub unread_query_rooms: usize,
    pub query_samples: usize,
    pub history_messages: usize,
    pub replay: usize,
    pub replays: usize,
    pub soak_secs: f64,
    pub soak_rate: u32,
    /// Subscribers connecting per second.
    pub soak_churn: u32,
    /// The longest a subscriber stays.
    pub soak_lifetime_secs: f64,
    pub soak_users: usize,
    pub soak_rooms: usize,
    pub reminders: usize,
    pub reminder_users: usize,
    /// The window the reminders are due in.
    pub reminder_window_secs: f64,
    /// From the start of creating them to the window's start.
    pub reminder_lead_secs: f64,
    /// Users connected throughout the churn (plus a tenth as many waiting to reconnect).
    pub presence_users: usize,
    /// notify: messages sent (one webhook delivery each).
    pub notify_messages: usize,
    /// inbound: signed webhook messages posted (after a warm-up of one per contact).
    pub inbound_messages: usize,
    /// Rooms the users are spread over, one watcher each.
    pub presence_rooms: usize,
    /// Connects plus disconnects per second.
    pub presence_churn: u32,
    pub presence_secs: f64,
    /// Users typing, one `setTyping` a second each, in one room each.
    pub typing_users: usize,
    pub typing_secs: f64,
}

impl Sizes {
    pub fn from_args(args: &Args) -> Self {
        let mut s = if args.quick { Self::quick() } else { Self::full() };
        if let Some(v) = args.rate {
            s.rate = v;
        }
        if let Some(v) = args.delivery_secs {
            s.delivery_secs = v;
        }
        if let Some(v) = args.burst_senders {
            s.burst_senders = v;
        }
        if let Some(v) = args.burst_messages {
            s.burst_messages = v;
        }
        if let Some(v) = &args.senders {
            s.senders = v.clone();
        }
        if let Some(v) = args.throughput_secs {
            s.throughput_secs = v;
        }
        if let Some(v) = &args.fanout {
            s.fanout = v.clone();
        }
        if let Some(v) = args.fanout_messages {
            s.fanout_messages = v;
        }
        if let Some(v) = args.frames_subscribers {
            s.frames_subscribers = v;
        }
        if let Some(v) = args.frames_messages {
            s.frames_messages = v;
        }
        if let Some(v) = &args.connections {
            s.connections = v.clone();
        }
        if let Some(v) = args.unread_rooms {
            s.unread_rooms = v;
        }
        if let Some(v) = args.unread_per_room {
            s.unread_per_room = v;
        }
        if let Some(v) = args.unread_users {
            s.unread_users = v;
        }
        if let Some(v) = args.unread_query_rooms {
            s.unread_query_rooms = v;
        }
        if let Some(v) = args.history_messages {
            s.history_messages = v;
        }
        if let Some(v) = args.soak_secs {
            s.soak_secs = v;
        }
        if let Some(v) = args.soak_rate {
            s.soak_rate = v;
        }
        if let Some(v) = args.reminders {
            s.reminders = v;
        }
        if let Some(v) = args.presence_users {
            s.presence_users = v;
        }
        if let Some(v) = args.notify_messages {
            s.notify_messages = v;
        }
        if let Some(v) = args.presence_churn {
            s.presence_churn = v;
        }
        s
    }

    /// The sizes of issue 3 and SPEC §11.
    fn full() -> Self {
        Self {
            floor_samples: 5000,
            floor_pool_secs: 5.0,
            rate: 500,
            delivery_secs: 30.0,
            dm_pairs: 50,
            channel_subscribers: 50,
            burst_senders: 8,
            burst_messages: 200,
            senders: vec![1, 4, 16, 64],
            throughput_secs: 10.0,
            fanout: vec![1000, 5000, 10_000],
            fanout_messages: 20,
            frames_subscribers: 20,
            frames_messages: 100,
            connections: vec![0, 1000, 5000, 10_000],
            unread_rooms: 2000,
            unread_per_room: 500,
            unread_users: 1000,
            unread_viewers: 20,
            unread_query_rooms: 500,
            query_samples: 500,
            history_messages: 100_000,
            replay: 500,
            replays: 50,
            soak_secs: 600.0,
            soak_rate: 300,
            soak_churn: 20,
            soak_lifetime_secs: 10.0,
            soak_users: 400,
            soak_rooms: 40,
            reminders: 10_000,
            reminder_users: 100,
            reminder_window_secs: 10.0,
            reminder_lead_secs: 20.0,
            presence_users: 10_000,
            notify_messages: 10_000,
            inbound_messages: 6_000,
            presence_rooms: 100,
            presence_churn: 500,
            presence_secs: 20.0,
            typing_users: 1000,
            typing_secs: 10.0,
        }
    }

    /// A few seconds per scenario: proves the harness works, measures nothing worth quoting.
    fn quick() -> Self {
        Self {
            floor_samples: 300,
            floor_pool_secs: 1.0,
            rate: 100,
            delivery_secs: 2.0,
            dm_pairs: 4,
            channel_subscribers: 4,
            burst_senders: 8,
            burst_messages: 30,
            senders: vec![1, 4],
            throughput_secs: 1.5,
            fanout: vec![200],
            fanout_messages: 5,
            frames_subscribers: 5,
            frames_messages: 20,
            connections: vec![0, 100, 300],
            unread_rooms: 200,
            unread_per_room: 100,
            unread_users: 100,
            unread_viewers: 5,
            unread_query_rooms: 100,
            query_samples: 50,
            history_messages: 5000,
            replay: 500,
            replays: 5,
            soak_secs: 8.0,
            soak_rate: 50,
            soak_churn: 10,
            soak_lifetime_secs: 2.0,
            soak_users: 40,
            soak_rooms: 4,
            reminders: 300,
            reminder_users: 10,
            reminder_window_secs: 2.0,
            reminder_lead_secs: 3.0,
            presence_users: 200,
            notify_messages: 200,
            inbound_messages: 400,
            presence_rooms: 10,
            presence_churn: 100,
            presence_secs: 2.0,
            typing_users: 50,
            typing_secs: 2.0,
        }
    }
}
