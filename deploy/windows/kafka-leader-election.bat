@echo off
rem Runs Strom's kafka-leader-election.exe (one folder up, in bin\) with the given arguments,
rem as Kafka's bin\windows\kafka-leader-election.bat does. Example:
rem   bin\windows\kafka-leader-election.bat --bootstrap-server localhost:9092 --election-type preferred --all-topic-partitions
"%~dp0..\kafka-leader-election.exe" %*
exit /b %ERRORLEVEL%
