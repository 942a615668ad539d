mod common;
use common::*;
use sdeflow::prelude::*;

#[test]
fn scratch() {
    for (name, c) in [("pi", Controller::default()), ("I", Controller::Pi(PiController::integral())), ("pid", Controller::Pid(PidController::default()))] {
        let s = solve(&arenstorf(), Tsit5, Options::default().tol(1e-8).save_at(SaveAt::T1).controller(c)).unwrap();
        let d: Vec<f64> = s.last().iter().zip(&ARENSTORF_Y0).map(|(a,b)| a-b).collect();
        println!("arenstorf tsit5 {name}: {:?} {:?}", d, s.stats);
    }
    let s = solve(&arenstorf(), Dopri5, Options::default().tol(1e-8).save_at(SaveAt::T1)).unwrap();
    let d: Vec<f64> = s.last().iter().zip(&ARENSTORF_Y0).map(|(a,b)| a-b).collect();
    println!("arenstorf dp5: {:?} {:?}", d, s.stats);
    let s = solve(&arenstorf(), Vern7, Options::default().tol(1e-8).save_at(SaveAt::T1)).unwrap();
    let d: Vec<f64> = s.last().iter().zip(&ARENSTORF_Y0).map(|(a,b)| a-b).collect();
    println!("arenstorf v7: {:?} {:?}", d, s.stats);
}
