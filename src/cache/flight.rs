//! [`Flights`]: single-flight. At most one verification per token and generation is under way;
//! a miss for a token already being verified boards that flight and waits for its verdict
//! instead of asking Amazon.
//!
//! The table belongs to the cache, so the cache decides what a flight may do:
//!
//! - a flight is stamped with the token's [generation](super::generation) it started under, and
//!   a request boards only a flight of the generation it read or a newer one: a request that
//!   starts after an invalidation never gets the verdict of a flight that started before it;
//! - [`Flights::forget`] detaches a token's flight from the table: the requests already aboard
//!   still get its verdict, nobody else boards it, and (its generation being old) the cache does
//!   not store what it lands with;
//! - the pilot is the request that started the flight; if it is dropped before landing (its
//!   client went away), the flight is taken off the table and its passengers board again, one of
//!   them becoming the next pilot, so nobody waits on a flight nobody flies.
//!
//! Generic over what a flight lands with, so a second cache level can reuse it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use foldhash::fast::RandomState;
use tokio::sync::watch;

use super::key::TokenKey;

/// Shards of the table: boarding locks one, briefly, never across an `.await`.
const SHARDS: usize = 16;

/// One shard of the table.
type Shard<V> = HashMap<TokenKey, Flight<V>, RandomState>;

/// The flights under way, one per token.
pub(crate) struct Flights<V> {
    shards: Box<[Mutex<Shard<V>>]>,
}

/// A flight in the table.
struct Flight<V> {
    generation: u64,
    verdict: watch::Receiver<Option<V>>,
}

/// Where a request sits after [`Flights::board`].
pub(crate) enum Seat<'a, V> {
    /// It started the flight: it verifies, then [`Pilot::land`]s with the verdict.
    Pilot(Pilot<'a, V>),
    /// It boarded a flight under way: [`Passenger::arrive`] waits for the verdict.
    Passenger(Passenger<V>),
}

/// The request flying a flight. Dropped without landing, it takes the flight off the table.
pub(crate) struct Pilot<'a, V> {
    flights: &'a Flights<V>,
    key: TokenKey,
    verdict: watch::Sender<Option<V>>,
    /// A receiver of the flight's own channel: tells it from one that replaced it.
    own: watch::Receiver<Option<V>>,
}

/// A request waiting for another's flight.
pub(crate) struct Passenger<V> {
    verdict: watch::Receiver<Option<V>>,
}

impl<V> Default for Flights<V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::default())).collect(),
        }
    }
}

impl<V> Flights<V> {
    fn shard(&self, key: TokenKey) -> MutexGuard<'_, Shard<V>> {
        // Truncation intended: the low bits pick the shard.
        lock(&self.shards[(key as usize) % SHARDS])
    }
}

impl<V: Clone> Flights<V> {
    /// Boards the flight of `key` under `generation` (or a newer one), or starts one: a flight
    /// of an older generation is left to its passengers and replaced.
    pub(crate) fn board(&self, key: TokenKey, generation: u64) -> Seat<'_, V> {
        let mut shard = self.shard(key);
        if let Some(flight) = shard.get(&key) {
            // A newer flight serves a request that read an older generation just as well.
            if flight.generation >= generation && flight.verdict.has_changed().is_ok() {
                return Seat::Passenger(Passenger {
                    verdict: flight.verdict.clone(),
                });
            }
        }
        let (sender, receiver) = watch::channel(None);
        shard.insert(
            key,
            Flight {
                generation,
                verdict: receiver.clone(),
            },
        );
        Seat::Pilot(Pilot {
            flights: self,
            key,
            verdict: sender,
            own: receiver,
        })
    }

    /// Detaches the flight of `key`, if any: nobody boards it any more.
    pub(crate) fn forget(&self, key: TokenKey) {
        self.shard(key).remove(&key);
    }

    /// Detaches every flight.
    pub(crate) fn forget_all(&self) {
        for shard in &*self.shards {
            lock(shard).clear();
        }
    }

    /// The number of flights in the table.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }
}

impl<V> Pilot<'_, V> {
    /// Ends the flight: off the table, and `verdict` to every passenger.
    pub(crate) fn land(self, verdict: V) {
        // Drop takes the flight off the table; the passengers keep their receivers.
        self.verdict.send_replace(Some(verdict));
    }
}

impl<V> Drop for Pilot<'_, V> {
    fn drop(&mut self) {
        // `land` sends before this runs, so passengers of a landed flight see its verdict;
        // passengers of an abandoned one see the channel close and board again. Only this
        // flight is taken off: not one that replaced it after a `forget`.
        let mut shard = self.flights.shard(self.key);
        if shard
            .get(&self.key)
            .is_some_and(|flight| self.own.same_channel(&flight.verdict))
        {
            shard.remove(&self.key);
        }
    }
}

impl<V: Clone> Passenger<V> {
    /// The flight's verdict, or `None` when its pilot was dropped before landing (board
    /// again).
    pub(crate) async fn arrive(mut self) -> Option<V> {
        match self.verdict.wait_for(Option::is_some).await {
            Ok(verdict) => verdict.clone(),
            Err(_) => None,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a shard cannot leave a map half-updated: recover it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pilot(seat: Seat<'_, u32>) -> Pilot<'_, u32> {
        match seat {
            Seat::Pilot(pilot) => pilot,
            Seat::Passenger(_) => panic!("expected to start the flight"),
        }
    }

    fn passenger(seat: Seat<'_, u32>) -> Passenger<u32> {
        match seat {
            Seat::Passenger(passenger) => passenger,
            Seat::Pilot(_) => panic!("expected to board a flight under way"),
        }
    }

    #[tokio::test]
    async fn passengers_get_the_pilots_verdict_and_the_table_empties() {
        let flights = Flights::default();
        let first = pilot(flights.board(7, 0));
        let second = passenger(flights.board(7, 0));
        assert_eq!(flights.len(), 1);
        first.land(42);
        assert_eq!(flights.len(), 0, "a landed flight leaves the table");
        assert_eq!(second.arrive().await, Some(42));
    }

    #[tokio::test]
    async fn a_newer_generation_never_boards_an_older_flight() {
        let flights = Flights::default();
        let old = pilot(flights.board(7, 0));
        let old_passenger = passenger(flights.board(7, 0));
        let new = pilot(flights.board(7, 1));
        old.land(1);
        // The old flight's landing did not take the newer one off the table.
        assert_eq!(flights.len(), 1);
        let new_passenger = passenger(flights.board(7, 1));
        new.land(2);
        assert_eq!(old_passenger.arrive().await, Some(1));
        assert_eq!(new_passenger.arrive().await, Some(2));
    }

    #[tokio::test]
    async fn a_forgotten_flight_is_boarded_by_nobody_else() {
        let flights = Flights::default();
        let detached = pilot(flights.board(7, 0));
        let aboard = passenger(flights.board(7, 0));
        flights.forget(7);
        // Even under the same generation, a request after `forget` starts its own flight.
        let fresh = pilot(flights.board(7, 0));
        detached.land(1);
        assert_eq!(
            flights.len(),
            1,
            "the detached flight did not take the fresh one off"
        );
        assert_eq!(aboard.arrive().await, Some(1));
        fresh.land(2);
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn passengers_of_an_abandoned_flight_board_again() {
        let flights = Flights::<u32>::default();
        let abandoned = pilot(flights.board(7, 0));
        let waiting = passenger(flights.board(7, 0));
        drop(abandoned);
        assert_eq!(flights.len(), 0);
        assert_eq!(
            waiting.arrive().await,
            None,
            "told to board again, not left waiting"
        );
        let _next = pilot(flights.board(7, 0));
    }
}
