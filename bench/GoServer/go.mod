module supervisor/bench/goserver

go 1.19
