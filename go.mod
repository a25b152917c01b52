module github.com/signalbox/signalbox

go 1.26.8
